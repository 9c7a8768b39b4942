"""IFMR activation calibration (docs/amct.md §4.2) with memory bounded across batches.

AMCT concatenates every calibration batch, then over the ``N`` values::

    max0 = k-th largest,  k = N - int(max_percentile * N)  (k >= 1), clamped to >= 0
    min0 = k-th smallest, k = N - int(min_percentile * N)  (k >= 1), clamped to <= 0
    M    = max0 (asym) or max(|max0|, |min0|) (sym)
    c_i  = (start + i * step) * M,  i = 0, 1, ... while start + i * step < end
    asym: s_i = (c_i - min0) / (2^b - 1), clip [min0, c_i];  sym: s_i = c_i / (2^(b-1) - 1)
          (/ 2^(b-1) when |min0| > |max0|), clip [-c_i, c_i]
    loss_i = mean((round(clip(x) / s_i) * s_i - x)^2);  pick the first argmin
    offset = -round(min0 / s) - 2^(b-1) (asym) or 0;  s < FLT_EPSILON -> 1 (docs/amct.md §4.0)

Only the upper clip is searched; the lower stays at the percentile (as AMCT's code does).

Streaming (:class:`IfmrObserver`) keeps, instead of the data:
* the ``cap = k + max(64, k/4)`` largest and smallest values (``k`` for the values seen, or for
  ``expected_batches``) and the largest evicted value: the k-th largest is exact when it is >=
  every evicted value (always when ``cap`` covered the final ``k``; else a logged estimate);
* per bin count ``n``, sum ``S`` and square sum ``SS`` of ``2^15`` bins over ``[-R, R]``
  (:mod:`.ifmr_histogram`), from which every candidate's loss is computed: exactly where a bin
  holds no rounding half-point, as uniform inside a bin with one, and as uniform rounding noise
  ``s^2 / 12`` where a bin spans several grid steps (a 16-bit grid's step is finer than a bin).

On CPU the update and the candidates' per-bin errors run as compiled passes
(:mod:`.observe_ops`) with the same values bit for bit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.calibration.ifmr_histogram import HISTOGRAM_CHUNK, PowerOfTwoHistogram
from qdqforge.runtime.calibration.observe_ops import TAIL_HEAP_LIMIT, checked_scan, observe_ops
from qdqforge.runtime.kernels.quant_math import (
    FLT_EPSILON,
    ActivationQuantParams,
    check_finite,
    finite_batch,
    int_range,
)

logger = logging.getLogger(__name__)


def excluded_count(numel: int, percentile: float) -> int:
    """``k`` of the k-th largest value the percentile keeps (AMCT: ``N - int(p*N)``, >= 1)."""
    return max(numel - int(percentile * numel), 1)


def search_factors(search_range: tuple[float, float], search_step: float) -> torch.Tensor:
    """Candidate factors ``start + i*step`` below ``end`` (``torch.arange``, end exclusive)."""
    return torch.arange(search_range[0], search_range[1], search_step, dtype=torch.float64)


def _candidate_grids(
    factors: torch.Tensor, max0: float, min0: float, num_bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scales, clip_lo, clip_hi)`` of every candidate, float64 ``[n]``."""
    qmin, qmax = int_range(num_bits)
    if symmetric:
        clips = factors * max(abs(max0), abs(min0))
        scales = clips / (-qmin if abs(min0) > abs(max0) else qmax)
        return scales, -clips, clips
    clips = factors * max0
    return (clips - min0) / (2**num_bits - 1), torch.full_like(clips, min0), clips


def _select(losses: torch.Tensor, grids: tuple, min0: float, num_bits: int, symmetric: bool):
    best, qmin = int(torch.argmin(losses)), int_range(num_bits)[0]
    scale, lo, hi = (float(t[best]) for t in grids)
    if not scale >= FLT_EPSILON:
        return ActivationQuantParams(1.0, 0 if symmetric else qmin, lo, hi)
    offset = 0 if symmetric else int(-round(min0 / scale)) + qmin  # round(): half to even
    return ActivationQuantParams(scale, offset, lo, hi)


@dataclass(frozen=True)
class IfmrSettings:
    """IFMR's settings, with AMCT's defaults (``ifmr_exact`` and ``IfmrObserver`` take them).

    Attributes:
        num_bits: activation bit width.
        max_percentile: fraction of values kept below the upper bound.
        min_percentile: fraction of values kept above the lower bound.
        search_range: ``(start, end)`` factors of the upper-clip search.
        search_step: factor step.
        symmetric: symmetric grid (offset 0) instead of asymmetric.
    """

    num_bits: int = 8
    max_percentile: float = 0.999999
    min_percentile: float = 0.999999
    search_range: tuple[float, float] = (0.7, 1.3)
    search_step: float = 0.01
    symmetric: bool = False


def ifmr_exact(
    x: torch.Tensor, *, layer: str | None = None, **settings: Any
) -> ActivationQuantParams:
    """IFMR on all the data at once (AMCT's memory-heavy way; the reference for the observer).

    Args:
        x: every calibration value of the layer input (any shape).
        layer: layer name for errors.
        **settings: fields of :class:`IfmrSettings` (``num_bits=16``, ``symmetric=True``, ...).

    Returns:
        :class:`ActivationQuantParams`.

    Raises:
        CalibrationError: NaN/inf or empty input.
    """
    ifmr = IfmrSettings(**settings)
    flat = x.detach().reshape(-1).double()
    if flat.numel() == 0:
        raise CalibrationError(f"layer '{layer}': IFMR got no calibration data")
    check_finite(flat, layer)
    k_max = excluded_count(flat.numel(), ifmr.max_percentile)
    max0 = max(float(torch.topk(flat, k_max)[0][-1]), 0.0)
    k_min = excluded_count(flat.numel(), ifmr.min_percentile)
    min0 = min(-float(torch.topk(-flat, k_min)[0][-1]), 0.0)
    factors = search_factors(ifmr.search_range, ifmr.search_step)
    grids = _candidate_grids(factors, max0, min0, ifmr.num_bits, ifmr.symmetric)
    losses = torch.stack([_exact_loss(flat, s, lo, hi) for s, lo, hi in zip(*grids)])
    return _select(losses, grids, min0, ifmr.num_bits, ifmr.symmetric)


def _exact_loss(flat: torch.Tensor, scale, lo, hi) -> torch.Tensor:
    if scale < FLT_EPSILON:
        return torch.tensor(0.0, dtype=torch.float64)
    clipped = torch.clamp(flat, float(lo), float(hi))
    return torch.mean((torch.round(clipped / scale) * scale - flat) ** 2)


class _TailBuffer:
    """The ``cap`` largest (or, negated, smallest) values seen, and the largest evicted one."""

    def __init__(self, largest: bool) -> None:
        self.sign = 1.0 if largest else -1.0
        self.values: torch.Tensor | None = None  # sorted descending, float64, sign applied
        self.evicted = -math.inf

    def update(self, flat: torch.Tensor, cap: int) -> None:
        take = min(cap + 1, flat.numel())
        self.merge(torch.topk(flat, take, largest=self.sign > 0)[0].double() * self.sign, cap)

    def merge(self, top: torch.Tensor, cap: int) -> None:
        """Fold in a batch's ``cap + 1`` extreme values (float64, sign applied, descending)."""
        merged = top if self.values is None else torch.cat([self.values, top])
        kept = torch.topk(merged, min(cap + 1, merged.numel()))[0]
        if kept.numel() > cap:
            self.evicted = max(self.evicted, float(kept[-1]))
        self.values = kept[:cap]

    def kth(self, k: int) -> float | None:
        """The exact k-th largest value seen, or None if it may have been evicted."""
        if self.values is None or self.values.numel() < k:
            return None
        value = float(self.values[k - 1])
        return value if value >= self.evicted else None


class IfmrObserver:
    """Streaming IFMR: ``update`` per calibration batch, then ``compute``.

    State: two tail buffers of ``O(k)`` values and a ``[3, bins]`` float64 histogram, on the
    device of the first batch. Only ``k = N * (1 - percentile)`` grows with the values seen
    (``k = 1`` up to a million values at the default 0.999999). Give ``expected_batches``
    (AMCT's ``batch_num``) to size the tails for the final ``k`` from the first batch, and
    set ``ranks`` when the state will be merged with other processes' (:mod:`.observer_sync`).
    Further keyword arguments are the fields of :class:`IfmrSettings`.
    """

    def __init__(
        self,
        *,
        bins: int = 1 << 15,
        expected_batches: int | None = None,
        layer: str | None = None,
        **settings: Any,
    ) -> None:
        self.settings = IfmrSettings(**settings)
        self.num_bits, self.symmetric = self.settings.num_bits, self.settings.symmetric
        self.layer = layer
        self.percentiles = (self.settings.max_percentile, self.settings.min_percentile)
        self.expected_batches = expected_batches
        self.ranks = 1  # processes whose statistics will be merged (sizes the tails)
        self.numel = 0
        self._top, self._bottom = _TailBuffer(largest=True), _TailBuffer(largest=False)
        self._hist = PowerOfTwoHistogram(bins)

    def _cap(self, percentile: float, batch_numel: int) -> int:
        expected = batch_numel * (self.expected_batches or 0)
        k = excluded_count(max(self.numel, expected) * self.ranks, percentile)
        return k + max(64, k // 4)

    def update(self, x: torch.Tensor) -> None:
        """Add one batch of the layer input (any shape, any device).

        Raises:
            CalibrationError: the batch holds NaN or inf.
        """
        ops = observe_ops(x)
        if ops is not None:
            self._update_compiled(ops, x.detach().reshape(-1))
            return
        flat = finite_batch(x, self.layer)
        if flat is None:
            return
        self.numel += flat.numel()
        self._top.update(flat, self._cap(self.percentiles[0], flat.numel()))
        self._bottom.update(flat, self._cap(self.percentiles[1], flat.numel()))
        self._hist.update(flat)

    def _update_compiled(self, ops, flat: torch.Tensor) -> None:
        """:meth:`update` in two compiled passes (:mod:`.observe_ops`), the same state."""
        if flat.numel() == 0:
            return
        self.numel += flat.numel()
        buffers = ((self._top, self.percentiles[0]), (self._bottom, self.percentiles[1]))
        caps = [self._cap(percentile, flat.numel()) for _, percentile in buffers]
        takes = [min(cap + 1, flat.numel()) if cap < TAIL_HEAP_LIMIT else 0 for cap in caps]
        try:
            absmax, *tails = checked_scan(ops, flat, self.layer, takes)
        except CalibrationError:
            self.numel -= flat.numel()
            raise
        width = self._hist.prepare(absmax, flat.device)
        ops.ifmr_bins(flat, self._hist.stats, self._hist.radius, width, HISTOGRAM_CHUNK)
        for (buffer, _), cap, take, values in zip(buffers, caps, takes, tails):
            buffer.merge(values, cap) if take else buffer.update(flat, cap)

    def buffer_numel(self) -> int:
        """Number of values the observer holds (to check that memory stays bounded)."""
        tails = [b.values.numel() for b in (self._top, self._bottom) if b.values is not None]
        return sum(tails) + (0 if self._hist.stats is None else self._hist.stats.numel())

    def _tail(self, buffer: _TailBuffer, percentile: float) -> float:
        k = excluded_count(self.numel, percentile)
        value = buffer.kth(k)
        if value is not None:
            return buffer.sign * value
        logger.warning("layer '%s': IFMR percentile estimated from the histogram", self.layer)
        return self._hist.kth_estimate(k, largest=buffer.sign > 0)

    def _grids(self) -> tuple[float, tuple]:
        if self.numel == 0:
            raise CalibrationError(f"layer '{self.layer}': IFMR saw no calibration batch")
        max0 = max(self._tail(self._top, self.percentiles[0]), 0.0)
        min0 = min(self._tail(self._bottom, self.percentiles[1]), 0.0)
        factors = search_factors(self.settings.search_range, self.settings.search_step)
        return min0, _candidate_grids(factors, max0, min0, self.num_bits, self.symmetric)

    def candidate_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clip_max, mse)`` of every search candidate, float64 (diagnostics)."""
        _, grids = self._grids()
        return grids[2], self._hist.loss(grids, self.numel)

    def compute(self) -> ActivationQuantParams:
        """Percentiles, then the MSE search over the upper clip.

        Raises:
            CalibrationError: no batch was seen.
        """
        min0, grids = self._grids()
        losses = self._hist.loss(grids, self.numel)
        return _select(losses, grids, min0, self.num_bits, self.symmetric)
