"""A wide MLP whose size is one knob: ``WideMlp(width)`` holds ``wide_mlp_bytes(width)`` of
float32 weights (two ``Linear(width, width)`` and a ``Linear(width, 2048)`` head; ``depth``
such layers instead of two: the same bytes spread over more, smaller layers, as in the large
models users quantize, where a layer is a small part of the weights).

Width 16384 gives 2.3 GB, past protobuf's 2 GB limit (the slow test's model); width 8192 gives
0.6 GB, the same graph at a quarter of the size. Built without torch's init (``skip_init``, then
one seeded uniform fill), so a large instance costs one pass over its memory.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD = 2048


def wide_mlp_bytes(width: int, depth: int = 2) -> int:
    """Bytes of the model's float32 parameters (weights and biases)."""
    return 4 * (depth * width * width + width * HEAD + depth * width + HEAD)


class WideMlp(nn.Module):
    """``head(relu(fc<depth>(... relu(fc1(x)))))`` on ``[batch, width]`` inputs."""

    def __init__(self, width: int, depth: int = 2) -> None:
        super().__init__()
        self.hidden = [f"fc{i + 1}" for i in range(depth)]
        for name in self.hidden:
            setattr(self, name, nn.utils.skip_init(nn.Linear, width, width))
        self.head = nn.utils.skip_init(nn.Linear, width, HEAD)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in [*map(self.get_submodule, self.hidden), self.head]:
                layer.weight.uniform_(-1.0 / width**0.5, 1.0 / width**0.5, generator=generator)
                layer.bias.uniform_(-0.1, 0.1, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.hidden:
            x = torch.relu(self.get_submodule(name)(x))
        return self.head(x)


def wide_mlp_batches(width: int, batches: int, batch: int = 2) -> list[torch.Tensor]:
    """Seeded calibration batches ``[batch, width]``."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, width, generator=generator) for _ in range(batches)]
