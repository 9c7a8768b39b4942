"""Triton kernels of the fused QAT fake quantization (:mod:`.ulq_fused` launches them).

One forward for all three quantizers, on a row-major ``(rows, row_len)`` view with one scale per
row (ULQ activations: one row; weights: the channel-major ``(C, K)`` matrix)::

    y = clamp(rint(x / s[row]), qmin - o, qmax - o) * s[row]      (o: ULQ offset, else 0)

which is the reference grid ``(clamp(round(x/s) + o, qmin, qmax) - o) s`` (adding and removing
the integer ``o`` is exact). Division is ``div_rn`` (IEEE, as torch; Triton's ``/`` on float32
is approximate on GPU) and ``rint`` rounds half to even from ``floor`` (:func:`rint`), so the
forward is the reference's value bit for bit (up to the sign of a zero).

Backward kernels write one partial sum per block; the launcher adds them with ``torch.sum``
(deterministic, no atomics). ULQ activation (``params = [s, o, lo, hi, clip_max, clip_min]``,
``lo = s (qmin - o)``, ``hi = s (qmax - o)``)::

    upper = x > hi,  lower = x < lo,  grad_x = g [not upper, not lower]
    v = (upper ? clip_max : lower ? clip_min : x) / s
    partials: E = sum g (rint(v) - v),  S_u = sum g upper,  S_l = sum g lower

ulq_retrain weight, per row ``c``: ``v = m / s[c]``, ``grad_m = g [qmin <= v <= qmax]`` and the
partial of ``sum g (v < qmin ? qmin : v > qmax ? qmax : rint(v) - v)``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rint(x):
    """Round half to even, exactly: ``x - floor(x)`` is exact for ``|x| >= 0.5`` and can only
    round onto 0.5 when ``floor(x) = -1`` (odd: the right way). Triton has no ``rint`` that also
    runs in the interpreter. On NVIDIA ``floor`` flushes denormals, which still round to 0."""
    f = tl.floor(x)
    d = x - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) == 1.0
    r = tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)
    return tl.where((r == 0.0) & (x < 0.0), -0.0, r)  # torch.round(-0.3) is -0.0


@triton.jit
def div(x, y):
    """IEEE division: ``div_rn`` for float32 (``/`` is approximate there), ``/`` for float64."""
    if x.dtype == tl.float32:
        return tl.div_rn(x, y)
    return x / y


@triton.jit
def fake_quant_fwd_kernel(
    x_ptr, y_ptr, scale_ptr, offset_ptr, n, row_len, qmin: tl.constexpr, qmax: tl.constexpr,
    per_row: tl.constexpr, has_offset: tl.constexpr, block: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * block + tl.arange(0, block)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if per_row:
        s = tl.load(scale_ptr + offs // row_len, mask=mask, other=1.0)
    else:
        s = tl.load(scale_ptr)
    o = tl.load(offset_ptr) if has_offset else 0.0
    q = tl.clamp(rint(div(x, s)), qmin - o, qmax - o, propagate_nan=tl.PropagateNan.ALL)
    tl.store(y_ptr + offs, q * s, mask=mask)


@triton.jit
def ulq_act_bwd_kernel(x_ptr, g_ptr, gx_ptr, params_ptr, part_ptr, n, block: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * block + tl.arange(0, block)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    s = tl.load(params_ptr)
    lo, hi = tl.load(params_ptr + 2), tl.load(params_ptr + 3)
    clip_max, clip_min = tl.load(params_ptr + 4), tl.load(params_ptr + 5)
    upper, lower = x > hi, x < lo
    tl.store(gx_ptr + offs, tl.where(upper | lower, 0.0, g), mask=mask)
    v = div(tl.where(upper, clip_max, tl.where(lower, clip_min, x)), s)
    nblocks = tl.num_programs(0)
    tl.store(part_ptr + pid, tl.sum(g * (rint(v) - v), axis=0))
    tl.store(part_ptr + nblocks + pid, tl.sum(tl.where(upper, g, 0.0), axis=0))
    tl.store(part_ptr + 2 * nblocks + pid, tl.sum(tl.where(lower, g, 0.0), axis=0))


@triton.jit
def ulq_weight_bwd_kernel(
    m_ptr, g_ptr, gm_ptr, scale_ptr, part_ptr, row_len,
    qmin: tl.constexpr, qmax: tl.constexpr, block: tl.constexpr,
):  # fmt: skip
    row, col_block = tl.program_id(0), tl.program_id(1)
    cols = col_block * block + tl.arange(0, block)
    mask = cols < row_len
    offs = row.to(tl.int64) * row_len + cols
    m = tl.load(m_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    v = div(m, tl.load(scale_ptr + row))
    lower, upper = v < qmin, v > qmax
    local = tl.where(lower, qmin * 1.0, tl.where(upper, qmax * 1.0, rint(v) - v))
    tl.store(gm_ptr + offs, tl.where(lower | upper, 0.0, g), mask=mask)
    tl.store(part_ptr + row * tl.num_programs(1) + col_block, tl.sum(g * local, axis=0))
