"""The models and calibration batches of ``bench/flow.py``, built in code (no downloads).

* ``resnet18``: torchvision's ResNet-18 layout (``models/resnet18.py``), random weights.
* ``mobilenetv3``: MobileNetV3-Large (``models/mobilenetv3.py``), random weights.
* ``bert``: a BERT-base-sized encoder, ``transformers.BertModel(BertConfig())`` (12 layers,
  hidden 768, 12 heads, FFN 3072, 110 M parameters, random weights, SDPA attention, no pooler),
  ``(input_ids, attention_mask) -> last_hidden_state``, sequences of 128 tokens.
* ``lite0``: EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-
  model`` package (``bench`` extra; ``models/efficientnet_lite0.py``).

Every model gets ``batches`` calibration batches of ``batch`` samples (seeded); images are
``3x224x224``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

MODELS = ("resnet18", "mobilenetv3", "bert", "lite0")
SEQUENCE = 128


class BertEncoder(nn.Module):
    """``BertModel`` as ``(input_ids, attention_mask) -> last_hidden_state``."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def build_model(name: str) -> nn.Module:
    """The named model in eval mode (as users calibrate and export it: BatchNorm on its running
    statistics; until 2026-12-03 the CNNs were left in training mode)."""
    return _built(name).eval()


def _built(name: str) -> nn.Module:
    if name == "resnet18":
        from bench.models.resnet18 import build

        return build()
    if name == "mobilenetv3":
        from bench.models.mobilenetv3 import build

        return build()
    if name == "lite0":
        from bench.models.efficientnet_lite0 import load_pretrained

        return load_pretrained()
    if name == "bert":
        return _bert()
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")


def _bert() -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.zoo_import import import_transformers  # the zoo extra's torchvision: see there

    transformers = import_transformers()
    torch.manual_seed(0)
    config = transformers.BertConfig(attn_implementation="sdpa")
    return BertEncoder(transformers.BertModel(config, add_pooling_layer=False)).eval()


def calibration_batches(name: str, batches: int, batch: int) -> list:
    """Seeded inputs: image tensors, or ``(input_ids, attention_mask)`` for ``bert``."""
    gen = torch.Generator().manual_seed(1)
    if name != "bert":
        return [torch.randn(batch, 3, 224, 224, generator=gen) for _ in range(batches)]
    out = []
    for _ in range(batches):
        ids = torch.randint(0, 30522, (batch, SEQUENCE), generator=gen)
        lengths = torch.randint(SEQUENCE // 2, SEQUENCE + 1, (batch, 1), generator=gen)
        mask = (torch.arange(SEQUENCE)[None, :] < lengths).long()
        out.append((ids, mask))
    return out
