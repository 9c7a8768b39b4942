"""The zoo's case type: one architecture, how to build it at a size, and its example inputs.

Sizes: ``"ci"`` (tiny configs and small inputs, for ``tests/zoo``) and ``"full"`` (the
architecture as published, random-initialised, for ``bench/zoo.py``). No weights are
downloaded: every model is built from its config with random initialisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

SIZES = ("ci", "full")


@dataclass(frozen=True)
class ZooCase:
    """One architecture of the zoo.

    Attributes:
        name: ``timm/<model>`` or ``hf/<class>``.
        covers: the op families it brings (for the table).
        build: ``build(size) -> nn.Module`` (random init, seeded by the caller).
        inputs: ``inputs(size, batch, seed) -> tuple of tensors``, the positional arguments.
    """

    name: str
    covers: str
    build: Callable[[str], nn.Module]
    inputs: Callable[[str, int, int], tuple[torch.Tensor, ...]]


def image_inputs(ci: int, full: int) -> Callable[[str, int, int], tuple[torch.Tensor, ...]]:
    """Random images ``(batch, 3, s, s)``, ``s = ci`` or ``full``."""

    def inputs(size: str, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
        side = ci if size == "ci" else full
        generator = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, 3, side, side, generator=generator),)

    return inputs


def token_inputs(
    vocab: int, ci: int, full: int, mask: bool = True
) -> Callable[[str, int, int], tuple[torch.Tensor, ...]]:
    """Token ids ``(batch, length)`` in ``[1, vocab)`` and, with ``mask``, an attention mask
    whose last sample has its final quarter padded (the mask path is exercised)."""

    def inputs(size: str, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
        length = ci if size == "ci" else full
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, vocab, (batch, length), generator=generator)
        if not mask:
            return (ids,)
        attention = torch.ones(batch, length, dtype=torch.int64)
        attention[-1, length - max(1, length // 4) :] = 0
        return ids, attention

    return inputs


def float_inputs(*shape_ci: int, full: tuple[int, ...]) -> Callable:
    """Random float features ``(batch, *shape)`` (audio, spectrograms)."""

    def inputs(size: str, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
        shape = shape_ci if size == "ci" else full
        generator = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, *shape, generator=generator),)

    return inputs
