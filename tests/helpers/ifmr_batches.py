"""Calibration batches of known shapes (normal, post-ReLU, heavy-tailed) for IFMR tests."""

from __future__ import annotations

import torch


def make_batches(kind: str, batches: int, size: int = 2048, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        x = torch.randn(size, generator=gen, dtype=torch.float64)
        if kind == "relu":
            x = torch.relu(x)
        elif kind == "heavy":  # Student-t with 2 degrees of freedom
            chi = torch.randn(2, size, generator=gen, dtype=torch.float64).pow(2).mean(0)
            x = x / torch.sqrt(chi)
        out.append(x.float())
    return out


KINDS = ["normal", "relu", "heavy"]
