"""Snapshots of a torch model's full state, to prove API calls leave it untouched."""

from __future__ import annotations

import torch
from torch import nn


def snapshot(model: nn.Module) -> dict:
    """Parameters, buffers, training flags, hooks and requires_grad of every submodule."""
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for k, m in model.named_modules()
        },
        "ids": {k: id(p) for k, p in model.named_parameters()},
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    """Bit-identical state and identical flags/hooks compared with ``before``."""
    after = snapshot(model)
    assert after["tensors"].keys() == before["tensors"].keys()
    for key, value in before["tensors"].items():
        assert torch.equal(after["tensors"][key], value), f"{key} changed"
    for field in ("requires_grad", "training", "hooks", "ids"):
        assert after[field] == before[field], f"{field} changed"
