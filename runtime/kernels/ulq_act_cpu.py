"""CPU path of the ULQ activation Function (:class:`~.ulq.UlqActFakeQuant`): same values and
gradients as its tensor-op path, with the grid in Python scalars and fewer passes over x.

On CPU a QAT step pays twice for each activation quantizer: per-call overhead (~5-15 us per
tensor op; the transformer's 64x16x32 activations make that most of the cost) and memory passes
over large activations (a fresh buffer page-faults; bool masks and ``masked_fill`` are slow). So
here the grid is computed once per call from the clips' values (``.item()`` is free on CPU) in
numpy scalars of the tensor path's dtypes, and the masks are aten's fused activation-backward
kernels. In the clips' dtype (float32), as :func:`~.ulq.ulq_scale_offset` computes them::

    s = (clip_max - clip_min) / (2^b - 1),   o = round(qmin - clip_min / s)
    lo = s (qmin - o),  hi = s (qmax - o)      then cast to x's dtype; prev/next: outward neighbours

and in x's dtype::

    y      = clamp(round(x / s), qmin - o, qmax - o) * s         one buffer; = (q - o) s exactly
    grad_x = hardtanh_backward(g, x, prev(lo), next(hi))  g where lo <= x <= hi (x > prev(lo)
                                                          <=> x >= lo for floats of x's dtype)
    S_u    = sum threshold_backward(g, x, hi)             sum of g where x > hi
    S_l    = sum g - sum grad_x - S_u
    v      = clamp(x, lo, hi) / s,   E = grad_x . (round(v) - v)   (grad_x is 0 off the grid)
    G      = (E + e(clip_max) S_u + e(clip_min) S_l) / L,   e(c) = round(c / s) - c / s
    dL/dclip_max = G + S_u,   dL/dclip_min = S_l - G

The four sums are combined in Python floats; only the summation order differs from the
tensor-op path (float rounding of the clip gradients). :func:`scalar_path` says when it applies:
CPU, float32/float64 x and clips, ``torch.round`` (the identity test hook takes tensor ops).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from qdqforge.runtime.kernels.quant_math import int_range

hardtanh_backward = torch.ops.aten.hardtanh_backward
threshold_backward = torch.ops.aten.threshold_backward
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class ScalarGrid(NamedTuple):
    """The grid of one call: scale, offset, clip thresholds and their outward neighbours."""

    s: float
    o: float
    lo: float
    hi: float
    below_lo: float
    above_hi: float


def scalar_path(x: torch.Tensor, clip: torch.Tensor, rnd) -> bool:
    """True when the scalar CPU path reproduces the tensor path (module docstring)."""
    return (
        x.device.type == "cpu"
        and rnd is torch.round
        and x.dtype in NUMPY_DTYPES
        and clip.dtype in NUMPY_DTYPES
    )


def scalar_grid(clip_max: float, clip_min: float, num_bits: int, clip_dtype, x_dtype) -> ScalarGrid:
    """:class:`ScalarGrid` in the tensor path's float arithmetic (module docstring)."""
    c, f = NUMPY_DTYPES[clip_dtype], NUMPY_DTYPES[x_dtype]
    qmin, qmax = int_range(num_bits)
    with np.errstate(all="ignore"):  # degenerate clips give inf/nan, as the tensor ops do
        s = (c(clip_max) - c(clip_min)) / c(2**num_bits - 1)
        o = np.round(c(qmin) - c(clip_min) / s)
        lo, hi = f(s * (c(qmin) - o)), f(s * (c(qmax) - o))
    below, above = np.nextafter(lo, f(-np.inf)), np.nextafter(hi, f(np.inf))
    return ScalarGrid(*(float(v) for v in (s, o, lo, hi, below, above)))


def grid_forward(x: torch.Tensor, grid: ScalarGrid, num_bits: int) -> torch.Tensor:
    """``clamp(round(x / s), qmin - o, qmax - o) * s`` in one buffer."""
    qmin, qmax = int_range(num_bits)
    return torch.div(x, grid.s).round_().clamp_(qmin - grid.o, qmax - grid.o).mul_(grid.s)


def grid_one_buffer(x, s, o, num_bits: int, rnd) -> torch.Tensor:
    """``(clamp(round(x/s) + o, qmin, qmax) - o) * s`` as ``clamp(round(x/s), qmin-o, qmax-o) * s``
    in one buffer, for tensor ``s``/``o`` (any device): equal, since adding and removing ``o`` is
    exact on integer-valued floats."""
    qmin, qmax = int_range(num_bits)
    t = x / s
    t = t.round_() if rnd is torch.round else rnd(t)
    if x.device.type == "cpu":
        o = float(o)
    return t.clamp_(qmin - o, qmax - o).mul_(s)


def _rounding_error(clip: float, s: float, x_dtype) -> float:
    f = NUMPY_DTYPES[x_dtype]
    c = f(clip) / f(s)
    return float(np.round(c) - c)


def ulq_act_backward_scalar(grad, x, clips: tuple[float, float], grid: ScalarGrid, num_bits: int):
    """``(grad_x, dL/dclip_max, dL/dclip_min)`` of the module docstring; the clip gradients as
    Python floats."""
    grad_x = hardtanh_backward(grad, x, grid.below_lo, grid.above_hi)
    scratch = threshold_backward(grad, x, grid.hi)
    s_up = scratch.sum()
    v = torch.clamp(x, grid.lo, grid.hi, out=scratch).div_(grid.s)  # reuses the buffer
    e = v.round().sub_(v)
    sums = torch.stack(
        [torch.dot(grad_x.reshape(-1), e.reshape(-1)), s_up, grad.sum(), grad_x.sum()]
    )
    inside, s_up, total, passed = sums.tolist()
    e_max, e_min = (_rounding_error(c, grid.s, x.dtype) for c in clips)
    s_low = total - passed - s_up
    g = (inside + e_max * s_up + e_min * s_low) / (2**num_bits - 1)
    return grad_x, g + s_up, s_low - g
