"""QAT fake quantization with AMCT's gradients (docs/amct.md §4.5): ULQ activations, arq_retrain and
ulq_retrain weights. Each comes as a plain-torch reference (STE by ``v + (round(v) - v).detach()``,
autograd gives the gradients) and a ``torch.autograd.Function`` with a fused hand-written backward.
Forward values are the ONNX grid (``fake_quant_ref``): ``(clamp(round(x/s) + o) - o) * s``.

ULQ activation, ``L = 2^b - 1`` levels, learnable ``clip_max >= 0 >= clip_min``::

    s = (clip_max - clip_min) / L,  o = round(qmin - clip_min / s)        (o: no gradient)
    upper = x > s (qmax - o),  lower = x < s (qmin - o)
    x~ = (upper ? clip_max : lower ? clip_min : x) / s,  e = (round(x~) - x~) / L
    dL/dx = g [inside],  dL/dclip_max = sum g (e + upper),  dL/dclip_min = sum g (lower - e)

``fixed_min`` pins ``clip_min = 0`` (``o = qmin``). :func:`sanitize_clips` applies AMCT's
fallbacks (negative ``clip_max``/positive ``clip_min``/degenerate range -> previous values).

arq_retrain weight: symmetric min-max scale (ARQ, no gradient) each call, ``dL/dW = g``.

ulq_retrain weight, learnable scale ``s[c]`` (ARQ init), ``v = W/s``, ``n`` values per scale::

    y = clamp(round(v), qmin, qmax) s,  dL/dW = g [qmin <= v <= qmax]
    dL/ds = sum g [(round(v) - v) inside + qmin [v < qmin] + qmax [v > qmax]] / sqrt(n qmax)

The scale stays positive by construction: modules keep the ARQ scale ``s0`` as a buffer and learn
``t`` with ``s = s0 exp(t)`` (:func:`positive_scale`, ``t = 0`` at init). Adam then moves ``s``
by relative steps (scales are ~1e-3, a raw parameter would cross 0 at lr 1e-2), and weight decay
on ``t`` pulls ``s`` back towards the ARQ scale rather than towards 0.
``_round`` is a test hook (identity for ``gradcheck``); production code leaves it alone.
The ULQ activation Function computes its grid in one buffer; on CPU it runs
:mod:`~qdqforge.runtime.kernels.ulq_act_cpu` (grid in Python scalars, the same values and
gradients in fewer, faster passes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from qdqforge.runtime.kernels.arq import arq_scale, from_channel_major, to_channel_major
from qdqforge.runtime.kernels.quant_math import FLT_EPSILON, int_range
from qdqforge.runtime.kernels.ulq_act_cpu import (
    grid_forward,
    grid_one_buffer,
    scalar_grid,
    scalar_path,
    ulq_act_backward_scalar,
)

Round = Callable[[torch.Tensor], torch.Tensor]


def _ste(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` with the gradient of ``surrogate``."""
    return exact.detach() + (surrogate - surrogate.detach())


def _grid(x: torch.Tensor, s: torch.Tensor, o, qmin: int, qmax: int, rnd: Round) -> torch.Tensor:
    return (torch.clamp(rnd(x / s) + o, qmin, qmax) - o) * s


# ---- ULQ activations --------------------------------------------------------------------------


def ulq_scale_offset(clip_max, clip_min, num_bits: int = 8, _round: Round = torch.round):
    """``(s, o)`` from the clips; ``s`` keeps the clips' gradient, ``o`` is detached."""
    qmin, _ = int_range(num_bits)
    s = (clip_max - clip_min) / (2**num_bits - 1)
    return s, _round(qmin - clip_min / s).detach()


def ulq_clips_from_scale(scale: float, offset: int, num_bits: int = 8) -> tuple[float, float]:
    """ULQ clip init from IFMR: ``(clip_max, clip_min) = ((qmax - o) s, (qmin - o) s)``."""
    qmin, qmax = int_range(num_bits)
    return (qmax - offset) * scale, (qmin - offset) * scale


def sanitize_clips(clip_max, clip_min, prev_max, prev_min, num_bits: int = 8):
    """AMCT's fallbacks, without a device sync: invalid clips take the previous values."""
    clip_max = torch.where(clip_max < 0, prev_max, clip_max)
    clip_min = torch.where(clip_min > 0, prev_min, clip_min)
    degenerate = (clip_max - clip_min) / (2**num_bits - 1) < FLT_EPSILON
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
    return _ste(_grid(x, s, o, qmin, qmax, _round), surrogate)


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
    ge = grad * (ctx.round(v) - v) / (2**ctx.num_bits - 1)
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


# ---- arq_retrain weights ----------------------------------------------------------------------


def _arq_forward(m: torch.Tensor, num_bits: int, channel_wise: bool, rnd: Round) -> torch.Tensor:
    qmin, qmax = int_range(num_bits)
    scale = arq_scale(m.detach(), num_bits, channel_wise).to(m.dtype)
    return torch.clamp(rnd(m / scale[:, None]), qmin, qmax) * scale[:, None]


class ArqRetrainFakeQuant(torch.autograd.Function):
    """arq_retrain on a channel-major ``(C, K)`` weight: min-max forward, identity backward."""

    @staticmethod
    def forward(ctx, m, num_bits: int, channel_wise: bool, _round: Round):
        return _arq_forward(m, num_bits, channel_wise, _round)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def _channel_major(w, channel_wise: bool, channel_axis: int, groups: int) -> torch.Tensor:
    return to_channel_major(w, channel_axis, groups) if channel_wise else w.reshape(1, -1)


def arq_retrain_reference(
    w, num_bits=8, channel_wise=True, channel_axis=0, groups=1, _round: Round = torch.round
):
    """arq_retrain in plain torch ops (STE: ``dL/dW = g``)."""
    m = _channel_major(w, channel_wise, channel_axis, groups)
    out = _ste(_arq_forward(m, num_bits, channel_wise, _round), m)
    return from_channel_major(out, w.shape, channel_axis if channel_wise else 0, groups)


def arq_retrain_fake_quant(
    w: torch.Tensor,
    num_bits: int = 8,
    channel_wise: bool = True,
    channel_axis: int = 0,
    groups: int = 1,
    *,
    _round: Round = torch.round,
) -> torch.Tensor:
    """arq_retrain weight fake quantization: ARQ's grid recomputed every call, STE gradient.

    Args:
        w: float weight; ``channel_axis``/``groups`` as in :func:`arq.arq_quantize`.
        num_bits: weight bit width.
        channel_wise: per output channel, else per tensor.
        channel_axis: axis of the output channel (1 for ConvTranspose).
        groups: convolution groups (ConvTranspose channel order).

    Returns:
        The fake-quantized weight.
    """
    m = _channel_major(w, channel_wise, channel_axis, groups)
    out = ArqRetrainFakeQuant.apply(m, num_bits, channel_wise, _round)
    return from_channel_major(out, w.shape, channel_axis if channel_wise else 0, groups)


# ---- ulq_retrain weights ----------------------------------------------------------------------


def ulq_weight_init(w, num_bits=8, channel_wise=True, channel_axis=0, groups=1) -> torch.Tensor:
    """The ARQ scale ``s0`` (``[C]`` or ``[1]``) a learnable weight scale starts from."""
    m = _channel_major(w.detach(), channel_wise, channel_axis, groups)
    return arq_scale(m, num_bits, channel_wise).to(w.dtype)


def positive_scale(init_scale: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    """``s = s0 * exp(t)``: positive for every finite ``t`` (module docstring)."""
    return init_scale * torch.exp(log_ratio)


def _lsq_factor(m: torch.Tensor, num_bits: int) -> float:
    return 1.0 / math.sqrt(m.shape[1] * int_range(num_bits)[1])


def ulq_weight_reference(
    w, scale, num_bits=8, channel_axis=0, groups=1, _round: Round = torch.round, grad_factor=None
):
    """ulq_retrain in plain torch ops (LSQ gradient scaled by ``1/sqrt(n qmax)``)."""
    m = _channel_major(w, scale.numel() > 1, channel_axis, groups)
    factor = _lsq_factor(m, num_bits) if grad_factor is None else grad_factor
    qmin, qmax = int_range(num_bits)
    s = scale[:, None]
    s_g = (s - s * factor).detach() + s * factor  # value s, gradient scaled by factor
    v = torch.clamp(m / s_g, qmin, qmax)
    out = _ste(_grid(m, s, 0, qmin, qmax, _round), (v + (_round(v) - v).detach()) * s_g)
    return from_channel_major(out, w.shape, channel_axis if scale.numel() > 1 else 0, groups)


class UlqWeightFakeQuant(torch.autograd.Function):
    """ulq_retrain on a channel-major ``(C, K)`` weight with a ``[C]`` scale, fused backward."""

    @staticmethod
    def forward(ctx, m, scale, num_bits: int, grad_factor: float, _round: Round):
        qmin, qmax = int_range(num_bits)
        ctx.save_for_backward(m, scale)
        ctx.num_bits, ctx.factor, ctx.round = num_bits, grad_factor, _round
        return _grid(m, scale[:, None], 0, qmin, qmax, _round)

    @staticmethod
    def backward(ctx, grad):
        m, scale = ctx.saved_tensors
        qmin, qmax = int_range(ctx.num_bits)
        v = m / scale[:, None]
        lower, upper = v < qmin, v > qmax
        local = torch.where(lower, qmin, torch.where(upper, qmax, ctx.round(v) - v))
        grad_m = torch.where(lower | upper, 0.0, grad)
        grad_s = (grad * local).sum(dim=1) * ctx.factor
        return grad_m, grad_s, None, None, None


def ulq_weight_fake_quant(
    w: torch.Tensor,
    scale: torch.Tensor,
    num_bits: int = 8,
    channel_axis: int = 0,
    groups: int = 1,
    *,
    _round: Round = torch.round,
    grad_factor: float | None = None,
) -> torch.Tensor:
    """ulq_retrain weight fake quantization with a learnable positive scale.

    Args:
        w: float weight; ``channel_axis``/``groups`` as in :func:`arq.arq_quantize`.
        scale: ``[C]`` per output channel or ``[1]`` per tensor (from :func:`positive_scale`).
        num_bits: weight bit width.
        channel_axis: axis of the output channel (1 for ConvTranspose).
        groups: convolution groups (ConvTranspose channel order).
        grad_factor: override of the LSQ factor ``1/sqrt(n qmax)`` (tests use 1).

    Returns:
        The fake-quantized weight.
    """
    m = _channel_major(w, scale.numel() > 1, channel_axis, groups)
    factor = _lsq_factor(m, num_bits) if grad_factor is None else grad_factor
    out = UlqWeightFakeQuant.apply(m, scale.to(m.dtype), num_bits, factor, _round)
    return from_channel_major(out, w.shape, channel_axis if scale.numel() > 1 else 0, groups)
