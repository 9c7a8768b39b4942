"""Batches and configs for PTQ of MatMuls between activations (``hand_attention``)."""

from __future__ import annotations

import json

import torch

import qdqforge


def attention_batches(x: torch.Tensor) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [x, torch.randn(x.shape, generator=generator)]


def attention_config(tmp, model, x, cfg_text: str | None, edit=None):
    cfg, defination = tmp / "c.json", None
    if cfg_text is not None:
        defination = tmp / "c.cfg"
        defination.write_text(cfg_text)
    qdqforge.create_quant_config(str(cfg), model, (x,), config_defination=defination)
    tree = json.loads(cfg.read_text())
    # 7-bit weights: no u8 x s8 pair saturates in an x86 kernel without VNNI, so the QDQ model's
    # runtime-stage warning (the machine's, not the flow's) cannot appear.
    tree["weight_reduce_range"] = True
    if edit is not None:
        edit(tree)
    cfg.write_text(json.dumps(tree))
    return cfg
