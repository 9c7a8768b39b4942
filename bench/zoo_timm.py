"""The zoo's timm architectures (random init; ``"ci"`` size shrinks inputs and transformer depth).

CNNs keep their published layer structure at both sizes and get small images in CI; the vision
transformers get a few blocks and a small image (the op families are the same).
"""

from __future__ import annotations

from bench.zoo_cases import ZooCase, image_inputs
from bench.zoo_import import import_timm

_TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}

# name -> (covers, CI kwargs, CI image side, full image side)
TIMM_MODELS: dict[str, tuple[str, dict, int, int]] = {
    "resnet18": ("residual CNN, BN zero-init gamma", {}, 32, 224),
    "seresnext26d_32x4d": (  # timm zero-initialises each block's last BN gamma, so every SE
        "grouped conv, squeeze-excite, deep stem",  # block would see only zeros (zero range)
        {"zero_init_last": False},
        32,
        224,
    ),
    "mobilenetv2_050": ("inverted residual, depthwise, ReLU6", {}, 32, 224),
    "mobilenetv3_small_100": ("hard-swish, squeeze-excite", {}, 32, 224),
    "efficientnet_b0": ("SiLU, squeeze-excite, depthwise", {}, 32, 224),
    "lcnet_050": ("hard-swish, depthwise, SE", {}, 32, 224),
    "regnetx_002": ("grouped residual CNN", {}, 32, 224),
    "repvgg_a0": ("RepVGG branches", {}, 32, 224),
    "repvit_m0_9": ("RepViT re-parameterisation", {}, 64, 224),
    "ghostnet_100": ("GhostNet (cheap ops, slicing)", {}, 32, 224),
    "convnext_atto": ("ConvNeXt, LayerNorm2d", {}, 32, 224),
    "densenet121": ("DenseNet concat", {}, 32, 224),
    "inception_v3": ("Inception branches", {}, 96, 299),
    "levit_128s": ("LeViT attention, hard-swish", {"img_size": 64}, 64, 224),
    "mobilevit_xxs": ("MobileViT unfold/fold", {}, 64, 256),
    "vit_tiny_patch16_224": ("ViT", _TINY_VIT, 32, 224),
    "deit_tiny_distilled_patch16_224": ("DeiT distilled (two tokens)", _TINY_VIT, 32, 224),
    "swin_tiny_patch4_window7_224": (
        "Swin windows (roll, pad)",
        {"img_size": 64, "window_size": 4, "depths": (2, 2), "num_heads": (2, 4)},
        64,
        224,
    ),
    "mixer_s16_224": ("MLP-Mixer", {"img_size": 32}, 32, 224),
    "poolformer_s12": ("MetaFormer pooling, GroupNorm", {}, 32, 224),
    "edgenext_xx_small": ("EdgeNeXt transposed attention", {}, 64, 256),
}


def _builder(model: str, ci_kwargs: dict):
    def build(size: str):
        kwargs = {**ci_kwargs, "num_classes": 10} if size == "ci" else {}
        return import_timm().create_model(model, pretrained=False, **kwargs)

    return build


def timm_cases() -> list[ZooCase]:
    """One case per :data:`TIMM_MODELS` entry."""
    return [
        ZooCase(f"timm/{model}", covers, _builder(model, kwargs), image_inputs(ci, full))
        for model, (covers, kwargs, ci, full) in TIMM_MODELS.items()
    ]
