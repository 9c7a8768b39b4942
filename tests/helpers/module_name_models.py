"""Models whose module names are odd on purpose (ModuleDict keys with ``/``, ``"``, ...)."""

from __future__ import annotations

import torch
from torch import nn


class Blocks(nn.Module):
    """Linear layers in a ModuleDict under arbitrary keys, run in key order; ``unused`` not."""

    def __init__(self, keys, unused: bool = False) -> None:
        super().__init__()
        self.keys = list(keys)
        self.blocks = nn.ModuleDict({k: nn.Linear(4, 4) for k in self.keys})
        if unused:
            self.unused = nn.Linear(4, 4)

    def forward(self, x):
        for key in self.keys:
            x = torch.relu(self.blocks[key](x))
        return x
