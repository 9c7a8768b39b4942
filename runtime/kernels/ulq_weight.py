"""QAT fake quantization of weights with AMCT's gradients (docs/amct.md §4.5): arq_retrain and
ulq_retrain. Each comes as a plain-torch reference (autograd gives the gradients) and a
``torch.autograd.Function`` with a fused hand-written backward; forward values are the ONNX grid
of :func:`.ulq.fake_quant_grid`.

arq_retrain weight: symmetric min-max scale (ARQ, no gradient) each call, ``dL/dW = g``.

ulq_retrain weight, learnable scale ``s[c]`` (ARQ init), ``v = W/s``, ``n`` values per scale::

    y = clamp(round(v), qmin, qmax) s,  dL/dW = g [qmin <= v <= qmax]
    dL/ds = sum g [(round(v) - v) inside + qmin [v < qmin] + qmax [v > qmax]] / sqrt(n qmax)

The scale stays positive by construction: modules keep the ARQ scale ``s0`` as a buffer and learn
``t`` with ``s = s0 exp(t)`` (:func:`positive_scale`, ``t = 0`` at init). Adam then moves ``s``
by relative steps (scales are ~1e-3, a raw parameter would cross 0 at lr 1e-2), and weight decay
on ``t`` pulls ``s`` back towards the ARQ scale rather than towards 0.
``_round`` is a test hook (identity for ``gradcheck``); production code leaves it alone.
"""

from __future__ import annotations

import math

import torch

from qdqforge.runtime.kernels.arq import arq_scale, from_channel_major, to_channel_major
from qdqforge.runtime.kernels.quant_math import int_range
from qdqforge.runtime.kernels.ulq import Round, fake_quant_grid, straight_through

# ---- arq_retrain weights ----------------------------------------------------------------------


def _arq_forward(m: torch.Tensor, num_bits: int, channel_wise: bool, rnd: Round) -> torch.Tensor:
    """``clamp(rnd(m / s), qmin, qmax) * s``; without autograd in place on the buffer ``m / s``
    (the same values bit for bit, one tensor of ``m``'s size instead of three)."""
    qmin, qmax = int_range(num_bits)
    scale = arq_scale(m.detach(), num_bits, channel_wise).to(m.dtype)[:, None]
    y = m / scale
    if torch.is_grad_enabled():
        return torch.clamp(rnd(y), qmin, qmax) * scale
    y = y.round_() if rnd is torch.round else rnd(y)
    return y.clamp_(qmin, qmax).mul_(scale)


class ArqRetrainFakeQuant(torch.autograd.Function):
    """arq_retrain on a channel-major ``(C, K)`` weight: min-max forward, identity backward."""

    @staticmethod
    def forward(ctx, m, num_bits: int, channel_wise: bool, _round: Round):
        return _arq_forward(m, num_bits, channel_wise, _round)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def channel_major(w, channel_wise: bool, channel_axis: int, groups: int) -> torch.Tensor:
    """``w`` as ``(C, K)`` rows per output channel (``(1, N)`` per tensor)."""
    return to_channel_major(w, channel_axis, groups) if channel_wise else w.reshape(1, -1)


def arq_retrain_reference(
    w, num_bits=8, channel_wise=True, channel_axis=0, groups=1, _round: Round = torch.round
):
    """arq_retrain in plain torch ops (STE: ``dL/dW = g``)."""
    m = channel_major(w, channel_wise, channel_axis, groups)
    out = straight_through(_arq_forward(m, num_bits, channel_wise, _round), m)
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
    m = channel_major(w, channel_wise, channel_axis, groups)
    out = ArqRetrainFakeQuant.apply(m, num_bits, channel_wise, _round)
    return from_channel_major(out, w.shape, channel_axis if channel_wise else 0, groups)


# ---- ulq_retrain weights ----------------------------------------------------------------------


def ulq_weight_init(w, num_bits=8, channel_wise=True, channel_axis=0, groups=1) -> torch.Tensor:
    """The ARQ scale ``s0`` (``[C]`` or ``[1]``) a learnable weight scale starts from."""
    m = channel_major(w.detach(), channel_wise, channel_axis, groups)
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
    m = channel_major(w, scale.numel() > 1, channel_axis, groups)
    factor = _lsq_factor(m, num_bits) if grad_factor is None else grad_factor
    qmin, qmax = int_range(num_bits)
    s = scale[:, None]
    s_g = (s - s * factor).detach() + s * factor  # value s, gradient scaled by factor
    v = torch.clamp(m / s_g, qmin, qmax)
    out = straight_through(
        fake_quant_grid(m, s, 0, qmin, qmax, _round), (v + (_round(v) - v).detach()) * s_g
    )
    return from_channel_major(out, w.shape, channel_axis if scale.numel() > 1 else 0, groups)


class UlqWeightFakeQuant(torch.autograd.Function):
    """ulq_retrain on a channel-major ``(C, K)`` weight with a ``[C]`` scale, fused backward."""

    @staticmethod
    def forward(ctx, m, scale, num_bits: int, grad_factor: float, _round: Round):
        qmin, qmax = int_range(num_bits)
        ctx.save_for_backward(m, scale)
        ctx.num_bits, ctx.factor, ctx.round = num_bits, grad_factor, _round
        return fake_quant_grid(m, scale[:, None], 0, qmin, qmax, _round)

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
    m = channel_major(w, scale.numel() > 1, channel_axis, groups)
    factor = _lsq_factor(m, num_bits) if grad_factor is None else grad_factor
    out = UlqWeightFakeQuant.apply(m, scale.to(m.dtype), num_bits, factor, _round)
    return from_channel_major(out, w.shape, channel_axis if scale.numel() > 1 else 0, groups)
