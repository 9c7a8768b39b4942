"""Collectives the QAT ops and the calibration observers use so every rank holds identical
quantization state.

Two statistics are gathered in ``forward`` rather than learned, so DDP's gradient all-reduce
does not keep them in sync: the IFMR data behind a ULQ clip initialization (all-gathered, so every
rank runs IFMR on the union of the ranks' batches) and the search-N error sums (all-reduced).
PTQ calibration merges each observer's statistics once, when it computes (IFMR, HFMG:
:mod:`qdqforge.runtime.calibration.observer_sync`), and DMQ's running maxima after every forward.
All are no-ops unless ``torch.distributed`` is initialized with more than one rank, and inside
:func:`local_only` (``save_quant_retrain_model`` may run on rank 0 alone; a collective there would
wait for ranks that never come).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.distributed as dist

_LOCAL = contextvars.ContextVar("qdqforge_local_only", default=False)


def active() -> bool:
    """True when forwards must synchronize with other ranks."""
    if _LOCAL.get() or not dist.is_available() or not dist.is_initialized():
        return False
    return dist.get_world_size() > 1


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Within this block the QAT ops never call a collective."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def all_gather_flat(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` flattened and concatenated in rank order (sizes may differ)."""
    flat = x.detach().reshape(-1)
    if not active():
        return flat
    world = dist.get_world_size()
    size = torch.tensor([flat.numel()], dtype=torch.int64, device=flat.device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, dtype=flat.dtype, device=flat.device)
    padded[: flat.numel()] = flat
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(n)] for p, n in zip(parts, sizes)])


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over ranks (in place), or ``t`` itself when not distributed."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def world_size() -> int:
    """Ranks whose forwards synchronize (1 when not distributed)."""
    return dist.get_world_size() if active() else 1


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """``t`` maximized over ranks (in place), or ``t`` itself when not distributed."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_gather_stack(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (same shape on all) stacked in rank order: ``[world, *t.shape]``."""
    if not active():
        return t.unsqueeze(0)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.stack(parts)
