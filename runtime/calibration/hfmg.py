"""HFMG activation calibration (docs/amct.md §4.3): merged histograms, then an L2 window search.

Per batch ``h = histc(x, B, min(x), max(x))``. Two histograms merge onto the union range by
re-binning, assuming uniform density inside each source bin: with the source CDF piecewise
linear, ``F(t) = cum[j] + (t - lo_j) / w * h[j]``, target bin ``k`` gets ``F(t_k+1) - F(t_k)``.

Window search (as PyTorch's HistogramObserver), bin width ``w``, ``D = 2^b`` destination bins:
candidate windows ``[l, r]`` shave ``step = ceil(total / 100000)`` counts at a time from the end
that then drops more bins, until ``r - l + 1 <= B / 4``. A window's error maps it onto ``D`` bins
of width ``d = w (r - l + 1) / D``; a source bin ``j`` with density ``rho = h[j] / w`` and offsets
``[a, e]`` from its destination centre adds ``rho (e^3 - a^3) / 3`` (bins spanning several
destination bins add the full ``rho (d^3/4) / 3`` per inner bin; bins outside clamp to the ends).
Best window -> ``clip_min = lo + l w``, ``clip_max = lo + (r + 1) w`` -> min-max scale (§4.0).
"""

from __future__ import annotations

import bisect
import math

import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.calibration.observe_ops import checked_scan, observe_ops, row_sums
from qdqforge.runtime.kernels.quant_math import (
    ActivationQuantParams,
    asymmetric_scale_offset,
    finite_batch,
    symmetric_scale,
)

_WINDOW_CHUNK = 256


def rebin(hist: torch.Tensor, lo: float, hi: float, new_lo: float, new_hi: float) -> torch.Tensor:
    """Spread ``hist`` over ``[lo, hi]`` onto the same number of bins over ``[new_lo, new_hi]``."""
    bins = hist.numel()
    edges = torch.linspace(new_lo, new_hi, bins + 1, dtype=torch.float64, device=hist.device)
    if hi <= lo:  # a point mass: all of it in the target bin holding ``lo``
        cdf = (edges > lo).double() * hist.sum()
    else:
        pos = torch.clamp((edges - lo) / ((hi - lo) / bins), 0.0, float(bins))
        idx = torch.clamp(pos.floor().long(), max=bins - 1)
        cum = torch.cat([hist.new_zeros(1), torch.cumsum(hist, 0)])
        cdf = cum[idx] + (pos - idx) * hist[idx]
    cdf[0], cdf[-1] = 0.0, hist.sum()
    return torch.diff(cdf)


def candidate_windows(hist: torch.Tensor) -> list[tuple[int, int]]:
    """Greedy ``(left, right)`` bin windows, widest first (see module docstring)."""
    bins = hist.numel()
    cum = torch.cumsum(hist.double().cpu(), 0)
    ops = observe_ops()
    if ops is not None:
        return [tuple(w) for w in ops.hfmg_windows(cum).tolist()]
    cum = cum.tolist()
    total = cum[-1]
    step = math.ceil(total / 100000)
    left, right, cut_left, cut_right = 0, bins - 1, 0.0, 0.0
    windows = [(left, right)]
    while right - left + 1 > bins // 4 and cut_left + cut_right < total:
        new_left = min(bisect.bisect_right(cum, cut_left + step), right)
        new_right = max(bisect.bisect_left(cum, total - cut_right - step) - 1, left)
        if new_left - left > right - new_right:
            left, cut_left = new_left, cut_left + step
        else:
            right, cut_right = new_right, cut_right + step
        if windows[-1] != (left, right):
            windows.append((left, right))
    return windows


def _cube_norm(begin: torch.Tensor, end: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    return density * (end**3 - begin**3) / 3.0


def window_errors(hist: torch.Tensor, windows: torch.Tensor, num_bits: int) -> torch.Tensor:
    """L2 error of mapping each ``(left, right)`` window onto ``2^b`` bins (unit bin width)."""
    ops = observe_ops(hist)
    if ops is not None:  # the same per-bin values, compiled; the row sums stay torch's
        return row_sums(ops.hfmg_window_error(hist, windows, num_bits))
    dst_bins = 2**num_bits
    left, right = windows[:, 0:1].double(), windows[:, 1:2].double()
    dst_width = (right - left + 1) / dst_bins
    src = torch.arange(hist.numel(), dtype=torch.float64, device=hist.device)[None, :]
    begin, end = src - left, src - left + 1
    dst_begin = torch.clamp(torch.floor(begin / dst_width), 0, dst_bins - 1)
    dst_end = torch.clamp(torch.floor(end / dst_width), 0, dst_bins - 1)
    density, half = hist[None, :], dst_width / 2
    norm = _cube_norm(begin - (dst_begin + 0.5) * dst_width, half, density)
    norm = norm + (dst_end - dst_begin - 1) * _cube_norm(-half, half, density)
    norm = norm + _cube_norm(-half, end - (dst_end + 0.5) * dst_width, density)
    return norm.sum(dim=1)


def _moment_prefix(hist: torch.Tensor) -> torch.Tensor:
    centre = torch.arange(hist.numel(), dtype=torch.float64, device=hist.device) + 0.5
    moments = torch.stack([hist, hist * centre, hist * centre * centre])
    return torch.cat([moments.new_zeros(3, 1), torch.cumsum(moments, 1)], dim=1)


def window_errors_fast(hist: torch.Tensor, windows: torch.Tensor, num_bits: int) -> torch.Tensor:
    """:func:`window_errors` in ``O(2^b)`` per window, for windows of >= ``2^b`` bins.

    A source bin inside destination bin ``k`` (centre ``c``) adds ``h ((j + 1/2 - c)^2 + 1/12)``,
    summed from prefix moments of ``h``; a source bin cut by a destination edge ``e`` (at most one
    edge when ``d >= 1``) adds ``h/3 [(e-c_l)^3 - (j-c_l)^3 + (j+1-c_r)^3 - (e-c_r)^3]``.
    """
    ops = observe_ops(hist)
    if ops is not None:  # the same per-element values, compiled; the row sums stay torch's
        inside, cuts = ops.hfmg_window_terms(hist, _moment_prefix(hist), windows, num_bits)
        return row_sums(inside) + row_sums(cuts)
    dst_bins, bins = 2**num_bits, hist.numel()
    left, right = windows[:, 0:1].double(), windows[:, 1:2].double()
    width = (right - left + 1) / dst_bins
    edges = left + torch.arange(dst_bins + 1, dtype=torch.float64, device=hist.device) * width
    first = torch.ceil(edges[:, :-1]).long()
    first[:, 0] = 0
    end = torch.floor(edges[:, 1:]).long()
    end[:, -1] = bins
    end = torch.maximum(end, first)
    centre = (edges[:, :-1] + edges[:, 1:]) / 2
    s0, s1, s2 = (m[end] - m[first] for m in _moment_prefix(hist))
    inside = s2 - 2 * centre * s1 + (centre * centre + 1 / 12) * s0
    cut = edges[:, 1:-1]
    src = torch.floor(cut)
    mass = torch.where(cut > src, hist[src.long().clamp(0, bins - 1)], 0.0)
    c_l, c_r = centre[:, :-1], centre[:, 1:]
    split = (cut - c_l) ** 3 - (src - c_l) ** 3 + (src + 1 - c_r) ** 3 - (cut - c_r) ** 3
    return inside.sum(dim=1) + (mass * split / 3).sum(dim=1)


class HfmgObserver:
    """Streaming HFMG: ``update`` per calibration batch, then ``compute``.

    Memory is one ``[num_of_bins]`` float64 histogram on the batches' device.
    """

    def __init__(
        self,
        num_bits: int = 8,
        num_of_bins: int = 4096,
        symmetric: bool = False,
        layer: str | None = None,
    ) -> None:
        self.num_bits, self.bins, self.symmetric, self.layer = (
            num_bits,
            num_of_bins,
            symmetric,
            layer,
        )
        self.hist: torch.Tensor | None = None
        self.lo = self.hi = 0.0

    def _batch_histogram(self, flat: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        if hi <= lo:
            hist = torch.zeros(self.bins, dtype=torch.float64, device=flat.device)
            hist[0] = flat.numel()
            return hist
        data = flat if flat.dtype == torch.float64 else flat.float()
        return torch.histc(data, self.bins, lo, hi).double()

    def update(self, x: torch.Tensor) -> None:
        """Add one batch of the layer input (any shape, any device).

        Raises:
            CalibrationError: the batch holds NaN or inf.
        """
        flat = self._checked_batch(x)
        if flat is None:
            return
        lo, hi = (float(v) for v in torch.aminmax(flat))
        self.merge(self._batch_histogram(flat, lo, hi), lo, hi)

    def merge(self, batch: torch.Tensor, lo: float, hi: float) -> None:
        """Fold in a histogram of ``num_of_bins`` over ``[lo, hi]`` (a batch's, or a rank's)."""
        if self.hist is None:
            self.hist, self.lo, self.hi = batch, lo, hi
            return
        new_lo, new_hi = min(lo, self.lo), max(hi, self.hi)
        if (new_lo, new_hi) != (self.lo, self.hi):
            self.hist = rebin(self.hist, self.lo, self.hi, new_lo, new_hi)
        self.hist = self.hist + rebin(batch, lo, hi, new_lo, new_hi)
        self.lo, self.hi = new_lo, new_hi

    def _checked_batch(self, x: torch.Tensor) -> torch.Tensor | None:
        ops = observe_ops(x)
        if ops is None:
            return finite_batch(x, self.layer)
        flat = x.detach().reshape(-1)
        if flat.numel() == 0:
            return None
        checked_scan(ops, flat, self.layer)  # the NaN/inf check in one compiled pass
        return flat

    def best_window(self) -> tuple[int, int]:
        """The ``(left, right)`` bin window with the least L2 quantization error."""
        windows = torch.tensor(candidate_windows(self.hist), device=self.hist.device)
        narrowest = int((windows[:, 1] - windows[:, 0]).min()) + 1
        errors_of = window_errors_fast if narrowest >= 2**self.num_bits else window_errors
        errors = torch.cat(
            [errors_of(self.hist, w, self.num_bits) for w in windows.split(_WINDOW_CHUNK)]
        )
        left, right = windows[int(torch.argmin(errors))].tolist()
        return left, right

    def compute(self) -> ActivationQuantParams:
        """Clip range from the best window, then the min-max scale/offset (docs/amct.md §4.0).

        Raises:
            CalibrationError: no batch was seen.
        """
        if self.hist is None:
            raise CalibrationError(f"layer '{self.layer}': HFMG saw no calibration batch")
        clip_min, clip_max = self.lo, self.hi
        if self.hi > self.lo:
            left, right = self.best_window()
            width = (self.hi - self.lo) / self.bins
            clip_min, clip_max = self.lo + left * width, self.lo + (right + 1) * width
        if self.symmetric:
            scale, offset = symmetric_scale(clip_min, clip_max, self.num_bits)
        else:
            scale, offset = asymmetric_scale_offset(clip_min, clip_max, self.num_bits)
        return ActivationQuantParams(float(scale), int(offset), clip_min, clip_max)
