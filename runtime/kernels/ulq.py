"""QAT fake quantization of activations with AMCT's gradients (docs/amct.md §4.5): ULQ.

It comes as a plain-torch reference (STE by ``v + (round(v) - v).detach()``, autograd gives the
gradients) and a ``torch.autograd.Function`` with a fused hand-written backward. Forward values
are the ONNX grid (``fake_quant_ref``): ``(clamp(round(x/s) + o) - o) * s``
(:func:`fake_quant_grid`, shared with the weights of :mod:`.ulq_weight`).

ULQ activation, ``L = 2^b - 1`` levels, learnable ``clip_max >= 0 >= clip_min``::

    s = (clip_max - clip_min) / L,  o = round(qmin - clip_min / s)        (o: no gradient)
    upper = x > s (qmax - o),  lower = x < s (qmin - o)
    x~ = (upper ? clip_max : lower ? clip_min : x) / s,  e = (round(x~) - x~) / L
    dL/dx = g [inside],  dL/dclip_max = sum g (e + upper),  dL/dclip_min = sum g (lower - e)

``fixed_min`` pins ``clip_min = 0`` (``o = qmin``). :func:`sanitize_clips` applies AMCT's
fallbacks (negative ``clip_max``/positive ``clip_min``/degenerate range -> previous values).

``_round`` is a test hook (identity for ``gradcheck``); production code leaves it alone.
The ULQ activation Function computes its grid in one buffer; on CPU it runs
:mod:`~qdqforge.runtime.kernels.ulq_act_cpu` (grid in Python scalars, the same values and
gradients in fewer, faster passes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from qdqforge.runtime.kernels.quant_math import FLT_EPSILON, divide, int_range
from qdqforge.runtime.kernels.ulq_act_cpu import (
    grid_forward,
    grid_one_buffer,
    scalar_grid,
    scalar_path,
    ulq_act_backward_scalar,
)

Round = Callable[[torch.Tensor], torch.Tensor]


def straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` with the gradient of ``surrogate``."""
    return exact.detach() + (surrogate - surrogate.detach())


def fake_quant_grid(
    x: torch.Tensor, s: torch.Tensor, o, qmin: int, qmax: int, rnd: Round
) -> torch.Tensor:
    """``(clamp(rnd(x / s) + o, qmin, qmax) - o) * s``: the ONNX QDQ grid.

    Without autograd (the Functions' forwards, ``no_grad``: the QAT save's weights) the same
    operations run in place on the one buffer ``x / s``: the same values bit for bit (the sign
    of a zero included), without four more tensors of ``x``'s size."""
    y = x / s
    if torch.is_grad_enabled() or not _in_place_keeps(y, o):
        return (torch.clamp(rnd(y) + o, qmin, qmax) - o) * s
    y = y.round_() if rnd is torch.round else rnd(y)
    return y.add_(o).clamp_(qmin, qmax).sub_(o).mul_(s)


def _in_place_keeps(y: torch.Tensor, o) -> bool:
    """Whether ``y + o`` has ``y``'s dtype and shape (so ``y.add_(o)`` computes it)."""
    if not isinstance(o, torch.Tensor):
        return True
    return (
        torch.result_type(y, o) == y.dtype and torch.broadcast_shapes(y.shape, o.shape) == y.shape
    )


# ---- ULQ activations --------------------------------------------------------------------------


def ulq_scale(clip_max, clip_min, num_bits: int = 8) -> torch.Tensor:
    """``s = (clip_max - clip_min) / (2^b - 1)``, the same on every device (``divide``)."""
    return divide(clip_max - clip_min, 2**num_bits - 1)


def ulq_scale_offset(clip_max, clip_min, num_bits: int = 8, _round: Round = torch.round):
    """``(s, o)`` from the clips; ``s`` keeps the clips' gradient, ``o`` is detached."""
    qmin, _ = int_range(num_bits)
    s = ulq_scale(clip_max, clip_min, num_bits)
    return s, _round(qmin - clip_min / s).detach()


def ulq_clips_from_scale(scale: float, offset: int, num_bits: int = 8) -> tuple[float, float]:
    """ULQ clip init from IFMR: ``(clip_max, clip_min) = ((qmax - o) s, (qmin - o) s)``."""
    qmin, qmax = int_range(num_bits)
    return (qmax - offset) * scale, (qmin - offset) * scale


def sanitize_clips(clip_max, clip_min, prev_max, prev_min, num_bits: int = 8):
    """AMCT's fallbacks, without a device sync: invalid clips take the previous values."""
    clip_max = torch.where(clip_max < 0, prev_max, clip_max)
    clip_min = torch.where(clip_min > 0, prev_min, clip_min)
    degenerate = ulq_scale(clip_max, clip_min, num_bits) < FLT_EPSILON
    return torch.where(degenerate, prev_max, clip_max), torch.where(degenerate, prev_min, clip_min)


def sanitize_scalar_clips(
    clip_max: float, clip_min: float, prev_max: float, prev_min: float, num_bits: int = 8
) -> tuple[float, float]:
    """:func:`sanitize_clips` on Python floats of float32 clips (the range test in float32)."""
    clip_max = prev_max if clip_max < 0 else clip_max
    clip_min = prev_min if clip_min > 0 else clip_min
    f32 = np.float32
    with np.errstate(all="ignore"):
        degenerate = (f32(clip_max) - f32(clip_min)) / f32(2**num_bits - 1) < f32(FLT_EPSILON)
    return (prev_max, prev_min) if degenerate else (clip_max, clip_min)


def clearly_valid_clips(clip_max: float, clip_min: float, num_bits: int = 8) -> bool:
    """True when :func:`sanitize_scalar_clips` keeps the clips, decided without float32 math:
    a range of ``2 FLT_EPSILON L`` in float64 stays above ``FLT_EPSILON L`` after float32's
    rounding of the difference and the division. False means "ask sanitize_scalar_clips"."""
    return clip_max >= 0.0 >= clip_min and clip_max - clip_min >= 2 * FLT_EPSILON * (
        2**num_bits - 1
    )


def ulq_act_reference(x, clip_max, clip_min, num_bits: int = 8, _round: Round = torch.round):
    """ULQ activation fake-quant in plain torch ops (autograd gives AMCT's gradients)."""
    qmin, qmax = int_range(num_bits)
    s, o = ulq_scale_offset(clip_max, clip_min, num_bits, _round)
    with torch.no_grad():
        upper, lower = x > s * (qmax - o), x < s * (qmin - o)
    v = torch.where(upper, clip_max, torch.where(lower, clip_min, x)) / s
    surrogate = (v + (_round(v) - v).detach()) * s
    return straight_through(fake_quant_grid(x, s, o, qmin, qmax, _round), surrogate)


class UlqActFakeQuant(torch.autograd.Function):
    """ULQ activation fake-quant with the fused backward of the module docstring; on CPU the
    grid is in Python scalars (:mod:`~qdqforge.runtime.kernels.ulq_act_cpu`)."""

    @staticmethod
    def forward(ctx, x, clip_max, clip_min, num_bits: int, _round: Round):
        ctx.num_bits, ctx.round, ctx.grid = num_bits, _round, None
        ctx.clip_like = [(c.shape, c.dtype) for c in (clip_max, clip_min)]
        if scalar_path(x, clip_max, _round) and clip_min.dtype == clip_max.dtype:
            ctx.clips = (float(clip_max), float(clip_min))
            ctx.grid = scalar_grid(*ctx.clips, num_bits, clip_max.dtype, x.dtype)
            ctx.save_for_backward(x)
            return grid_forward(x, ctx.grid, num_bits)
        s, o = ulq_scale_offset(clip_max, clip_min, num_bits, _round)
        ctx.save_for_backward(x, clip_max, clip_min, s, o)
        return grid_one_buffer(x, s, o, num_bits, _round).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        if ctx.grid is not None:
            (x,) = ctx.saved_tensors
            grad_x, *clip_grads = ulq_act_backward_scalar(
                grad, x, ctx.clips, ctx.grid, ctx.num_bits
            )
        else:
            x, clip_max, clip_min, s, o = ctx.saved_tensors
            grad_x, *clip_grads = _ulq_act_backward(ctx, grad, x, clip_max, clip_min, s, o)
        g_max, g_min = (
            torch.as_tensor(g, dtype=dtype).reshape(shape)
            for g, (shape, dtype) in zip(clip_grads, ctx.clip_like)
        )
        grad_x = grad_x if ctx.needs_input_grad[0] else None
        return grad_x, g_max, g_min if ctx.needs_input_grad[2] else None, None, None


def _ulq_act_backward(ctx, grad, x, clip_max, clip_min, s, o):
    qmin, qmax = int_range(ctx.num_bits)
    upper, lower = x > s * (qmax - o), x < s * (qmin - o)
    grad_x = torch.where(upper | lower, 0.0, grad)
    v = torch.where(upper, clip_max, torch.where(lower, clip_min, x)) / s
    ge = divide(grad * (ctx.round(v) - v), 2**ctx.num_bits - 1)
    return grad_x, (ge + grad * upper).sum(), (grad * lower - ge).sum()


def ulq_act_fake_quant(
    x: torch.Tensor,
    clip_max: torch.Tensor,
    clip_min: torch.Tensor | None = None,
    num_bits: int = 8,
    fixed_min: bool = False,
    *,
    _round: Round = torch.round,
) -> torch.Tensor:
    """ULQ activation fake quantization (fused backward).

    Args:
        x: activation.
        clip_max: 0-d learnable upper clip (> 0; see :func:`sanitize_clips`).
        clip_min: 0-d learnable lower clip (<= 0); ignored (taken as 0) with ``fixed_min`` or None.
        num_bits: activation bit width.
        fixed_min: pin ``clip_min`` to 0 (after ReLU).

    Returns:
        The fake-quantized activation, ``x``'s shape and dtype.
    """
    if fixed_min or clip_min is None:
        clip_min = torch.zeros_like(clip_max).detach()
    return UlqActFakeQuant.apply(x, clip_max, clip_min, num_bits, _round)
