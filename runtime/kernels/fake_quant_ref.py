"""Reference fake quantization with a straight-through estimator, bit-exact with onnxruntime.

``q = clamp(round(x / scale) + zp, qmin, qmax)``, ``y = (q - zp) * scale``. ORT divides (it does
not multiply by 1/scale) and rounds half to even, as ``torch.round`` does. The rounding passes the
gradient straight through; the clamp zeroes it outside [qmin, qmax], so dy/dx is 1 inside the
range and 0 outside, and the scale gets the LSQ-style gradient when it is trainable.
"""

from __future__ import annotations

import torch


class RoundSTE(torch.autograd.Function):
    """``torch.round`` forward, identity backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def per_axis(x: torch.Tensor, value, axis: int | None):
    """Reshape a 1-D per-axis ``value`` to broadcast along ``axis`` of ``x``."""
    if axis is None or not isinstance(value, torch.Tensor) or value.dim() != 1:
        return value
    axis = axis + x.dim() if axis < 0 else axis
    return value.reshape([-1] + [1] * (x.dim() - axis - 1))


def _zero_point(x: torch.Tensor, zero_point, axis: int | None):
    if isinstance(zero_point, torch.Tensor):
        zero_point = zero_point.to(x.dtype)
    return per_axis(x, zero_point, axis)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | int,
    qmin: int,
    qmax: int,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize-dequantize ``x`` (per-tensor, or per-axis when ``scale`` is 1-D).

    Args:
        x: float input.
        scale: scalar or 1-D scale (kept as a tensor so it can be trained).
        zero_point: Python int or integer/float tensor shaped like ``scale``.
        qmin: lowest integer of the grid (e.g. -128 for int8).
        qmax: highest integer of the grid.
        axis: the channel axis for 1-D scales.

    Returns:
        The dequantized tensor, same dtype as ``x``.
    """
    scale = per_axis(x, scale, axis)
    zero_point = _zero_point(x, zero_point, axis)
    q = RoundSTE.apply(x / scale)
    if not isinstance(zero_point, int) or zero_point:
        q = q + zero_point
    q = torch.clamp(q, qmin, qmax)
    if not isinstance(zero_point, int) or zero_point:
        q = q - zero_point
    return q * scale


def quantize_linear(x, scale, zero_point, qmin: int, qmax: int, axis, dtype: torch.dtype):
    """ONNX QuantizeLinear: the integer tensor (no gradient)."""
    scale = per_axis(x, scale, axis)
    q = torch.round(x / scale) + _zero_point(x, zero_point, axis)
    return torch.clamp(q, qmin, qmax).to(dtype)


def dequantize_linear(q: torch.Tensor, scale: torch.Tensor, zero_point, axis):
    """ONNX DequantizeLinear: ``(q - zp) * scale`` in the scale's dtype."""
    x = q.to(scale.dtype)
    return (x - _zero_point(x, zero_point, axis)) * per_axis(x, scale, axis)
