"""A wide MLP whose size is one knob: ``WideMlp(width)`` holds ``wide_mlp_bytes(width)`` of
float32 weights (two ``Linear(width, width)`` and a ``Linear(width, 2048)`` head).

Width 16384 gives 2.3 GB, past protobuf's 2 GB limit (the slow test's model); width 8192 gives
0.6 GB, the same graph at a quarter of the size. Built without torch's init (``skip_init``, then
one seeded uniform fill), so a large instance costs one pass over its memory.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD = 2048


def wide_mlp_bytes(width: int) -> int:
    """Bytes of the model's float32 parameters (weights and biases)."""
    return 4 * (2 * width * width + width * HEAD + 2 * width + HEAD)


class WideMlp(nn.Module):
    """``head(relu(fc2(relu(fc1(x)))))`` on ``[batch, width]`` inputs."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.utils.skip_init(nn.Linear, width, width)
        self.fc2 = nn.utils.skip_init(nn.Linear, width, width)
        self.head = nn.utils.skip_init(nn.Linear, width, HEAD)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in (self.fc1, self.fc2, self.head):
                layer.weight.uniform_(-1.0 / width**0.5, 1.0 / width**0.5, generator=generator)
                layer.bias.uniform_(-0.1, 0.1, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def wide_mlp_batches(width: int, batches: int, batch: int = 2) -> list[torch.Tensor]:
    """Seeded calibration batches ``[batch, width]``."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, width, generator=generator) for _ in range(batches)]
