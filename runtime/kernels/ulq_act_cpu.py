"""CPU path of the ULQ activation Function (:class:`~.ulq.UlqActFakeQuant`): same values and
gradients as its tensor-op path, in fewer and faster passes over the activation.

On CPU a training step of a quantized CNN is bound by memory passes over the activations: a
fresh buffer costs a page-faulting allocation, bool masks and ``masked_fill`` run several times
slower than arithmetic, and ``clamp`` with tensor bounds is not vectorized. So here the grid
bounds are Python floats (``.item()`` is free on CPU; on CUDA it would sync, so other devices
keep the tensor ops) and the masks are aten's fused activation-backward kernels. With
``lo = s (qmin - o)``, ``hi = s (qmax - o)`` (the thresholds of the tensor-op path)::

    y      = clamp(round(x / s), qmin - o, qmax - o) * s          one buffer; = (q - o) s exactly
    grad_x = hardtanh_backward(g, x, prev(lo), next(hi))   g where lo <= x <= hi  (x > prev(lo)
                                                           <=> x >= lo for floats of x's dtype)
    S_u    = sum threshold_backward(g, x, hi)              sum of g where x > hi
    S_l    = sum g - sum grad_x - S_u
    v      = clamp(x, lo, hi) / s,   E = grad_x . (round(v) - v)   (grad_x is 0 off the grid)
    G      = (E + e(clip_max) S_u + e(clip_min) S_l) / L,   e(c) = round(c / s) - c / s
    dL/dclip_max = G + S_u,   dL/dclip_min = S_l - G

The four sums are combined in Python floats; only the summation order differs from the
tensor-op path (float rounding of the clip gradients).
"""

from __future__ import annotations

import math

import torch

from qdqforge.runtime.kernels.quant_math import int_range

hardtanh_backward = torch.ops.aten.hardtanh_backward
threshold_backward = torch.ops.aten.threshold_backward


def grid_one_buffer(x, s, o, num_bits: int, rnd) -> torch.Tensor:
    """``(clamp(round(x/s) + o, qmin, qmax) - o) * s`` as ``clamp(round(x/s), qmin-o, qmax-o) * s``
    in one buffer: equal, since adding and removing ``o`` is exact on integer-valued floats."""
    qmin, qmax = int_range(num_bits)
    t = x / s
    t = t.round_() if rnd is torch.round else rnd(t)
    if x.device.type == "cpu":
        o = float(o)
    return t.clamp_(qmin - o, qmax - o).mul_(s)


def bounds(x, s, o, num_bits: int) -> list[float]:
    """``[lo, hi, prev(lo), next(hi)]`` in ``x``'s dtype: the tensor-op path's thresholds (``s``'s
    dtype, compared in ``x``'s) and their outer float neighbours. Few small ops: on a small
    activation their overhead is what a step pays."""
    qmin, qmax = int_range(num_bits)
    edges = (s * (torch.tensor([qmin, qmax], dtype=s.dtype) - o)).to(x.dtype)
    outward = torch.nextafter(edges, torch.tensor([-math.inf, math.inf], dtype=x.dtype))
    return torch.cat([edges, outward]).tolist()


def ulq_act_backward_cpu(ctx, grad, x, clips, s, o):
    """``(grad_x, grad_clip_max, grad_clip_min)`` of the module docstring (0-d clip grads)."""
    lo, hi, below_lo, above_hi = bounds(x, s, o, ctx.num_bits)
    grad_x = hardtanh_backward(grad, x, below_lo, above_hi)
    scratch = threshold_backward(grad, x, hi)
    s_up = scratch.sum()
    v = torch.clamp(x, lo, hi, out=scratch).div_(s)  # one buffer fewer: page faults cost
    e = ctx.round(v).sub_(v)  # with the identity test hook this is v - v = 0, as it should be
    sums = torch.stack(
        [torch.dot(grad_x.reshape(-1), e.reshape(-1)), s_up, grad.sum(), grad_x.sum()]
    )
    inside, s_up, total, passed = sums.tolist()
    c = torch.stack([clip.to(x.dtype) for clip in clips]) / s
    e_max, e_min = (ctx.round(c) - c).tolist()
    s_low = total - passed - s_up
    g = (inside + e_max * s_up + e_min * s_low) / (2**ctx.num_bits - 1)
    dtype = clips[0].dtype
    return grad_x, torch.tensor(g + s_up, dtype=dtype), torch.tensor(s_low - g, dtype=dtype)
