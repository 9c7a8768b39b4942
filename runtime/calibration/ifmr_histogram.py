"""IFMR's streamed statistics: count, sum and square sum per bin, and each candidate's loss.

``2^15`` bins over ``[-R, R]``, ``R`` a power of two that doubles by merging bin pairs, hold per
bin ``n``, ``S = sum x`` and ``SS = sum x^2``. For a candidate grid ``q(x) = round(clip(x, lo,
hi) / s) * s`` a bin ``[a, a + w]`` adds to ``sum (q(x) - x)^2``:

* no rounding half-point inside (``q`` constant, e.g. beyond a clip): ``SS - 2 q S + n q^2``,
  exact;
* one half-point ``h`` between neighbouring grid points ``q1 < q2``: the bin taken as uniform,
  ``err(q2) - (q2 - q1) n (h - a)^2 / w``;
* several grid steps (``w > s``: a 16-bit grid, whose step is ``2^8`` times finer, or an 8-bit
  grid far narrower than ``R``): the values taken as uniform over the bin, the part inside
  ``[lo, hi]`` adds the rounding noise ``n_in s^2 / 12`` and a part beyond a clip the integral
  ``(n / w) int (x - q(clip))^2 dx``.

The loss is that sum over the ``N`` values seen, divided by ``N``.
"""

from __future__ import annotations

import math

import torch

from qdqforge.runtime.calibration.observe_ops import observe_ops, row_sums
from qdqforge.runtime.kernels.quant_math import FLT_EPSILON

HISTOGRAM_CHUNK = 1 << 18  # elements a histogram chunk: counted on its own, added in chunk order


def _grid_error(stats: torch.Tensor, width: float, scales, lo, hi) -> torch.Tensor:
    """Summed ``(q(x) - x)^2`` per candidate ``[n_candidates]`` (the module docstring's cases)."""
    ops = observe_ops(stats)
    if ops is not None:  # the same per-bin values, compiled; the row sums stay torch's
        err = row_sums(ops.ifmr_grid_error(stats, width, scales, lo, hi))
        return torch.where(scales < FLT_EPSILON, torch.zeros_like(err), err)
    n, total, squares, left = stats
    scales, lo, hi = scales[:, None], lo[:, None], hi[:, None]
    safe = torch.where(scales < FLT_EPSILON, torch.ones_like(scales), scales)

    def grid(v: torch.Tensor) -> torch.Tensor:
        return torch.round(torch.minimum(torch.maximum(v, lo), hi) / safe) * safe

    q1, q2 = grid(left[None, :]), grid(left[None, :] + width)
    one_step = (q2 - q1) <= safe * 1.000001
    half = (q1 + q2) / 2 - left[None, :]
    err = squares - 2 * q2 * total + n * q2 * q2 - (q2 - q1) * n * half * half / width
    bounds = (left[None, :], width, lo, hi)
    err = torch.where(one_step, err, _multi_step_error(n, bounds, safe, grid(lo), grid(hi)))
    err = err.sum(dim=1)
    return torch.where(scales[:, 0] < FLT_EPSILON, torch.zeros_like(err), err)


def _multi_step_error(n, bounds, scale, q_lo, q_hi) -> torch.Tensor:
    """Error of bins ``[a, a + w]`` spanning several grid steps: ``n_in s^2 / 12`` inside the
    clip range plus ``(n / w) int (x - q(clip))^2 dx`` beyond it (values uniform in the bin)."""
    a, width, lo, hi = bounds
    b = a + width
    inside = torch.clamp(torch.minimum(b, hi) - torch.maximum(a, lo), min=0.0)
    err = n * inside / width * scale * scale / 12
    top = torch.maximum(a, hi)
    err = err + torch.where(b > hi, n / width * ((b - q_hi) ** 3 - (top - q_hi) ** 3) / 3, 0.0)
    bottom = torch.minimum(b, lo)
    return err + torch.where(a < lo, n / width * ((bottom - q_lo) ** 3 - (a - q_lo) ** 3) / 3, 0.0)


class PowerOfTwoHistogram:
    """Count, sum and sum of squares per bin over ``[-R, R]``, ``R`` a power of two."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.radius = 0.0
        self.stats: torch.Tensor | None = None  # [3, bins] float64: n, S, SS

    def _grow(self, absmax: float) -> None:
        mantissa, exponent = math.frexp(absmax)
        radius = math.ldexp(1.0, exponent - 1 if mantissa == 0.5 else exponent)
        if self.radius == 0.0:
            self.radius = radius
            return
        doublings = round(math.log2(radius / self.radius))
        for _ in range(min(doublings, int(math.log2(self.bins)))):
            pairs = self.stats.reshape(3, self.bins // 2, 2).sum(dim=2)
            self.stats = torch.zeros_like(self.stats)
            self.stats[:, self.bins // 4 : 3 * self.bins // 4] = pairs
        self.radius = radius

    def prepare(self, absmax: float, device: torch.device) -> float:
        """Allocate or widen the bins for a batch with ``max |x| = absmax``; the bin width."""
        if self.stats is None:
            self.stats = torch.zeros(3, self.bins, dtype=torch.float64, device=device)
        if absmax > self.radius or self.radius == 0.0:
            self._grow(max(absmax, 2.0**-126))
        return 2.0 * self.radius / self.bins

    def update(self, flat: torch.Tensor) -> None:
        width = self.prepare(float(flat.abs().max()), flat.device)
        for chunk in flat.split(HISTOGRAM_CHUNK):
            x = chunk.double()
            idx = torch.clamp(((x + self.radius) / width).long(), 0, self.bins - 1)
            for row, weights in enumerate((None, x, x * x)):
                self.stats[row] += torch.bincount(idx, weights, minlength=self.bins)

    def loss(self, grids: tuple, numel: int) -> torch.Tensor:
        """Mean squared error of each candidate grid, from the per-bin statistics."""
        full = self.stats[0] > 0
        width = 2.0 * self.radius / self.bins
        left = torch.nonzero(full)[:, 0].double() * width - self.radius
        stats = torch.cat([self.stats[:, full], left[None, :]])
        chunks = zip(*(t.to(stats.device).split(8) for t in grids))
        return torch.cat([_grid_error(stats, width, *chunk) for chunk in chunks]) / numel

    def kth_estimate(self, k: int, largest: bool) -> float:
        """Mean of the bin holding the k-th largest (or smallest) value."""
        n, total = self.stats[0], self.stats[1]
        if largest:
            idx = torch.nonzero(torch.cumsum(n.flip(0), 0).flip(0) >= k).max()
        else:
            idx = torch.nonzero(torch.cumsum(n, 0) >= k).min()
        return float(total[idx] / n[idx])
