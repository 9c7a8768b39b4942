"""Reference fake quantization with a straight-through estimator, bit-exact with onnxruntime.

``q = clamp(round(x / scale) + zp, qmin, qmax)``, ``y = (q - zp) * scale``. ORT divides (it does
not multiply by 1/scale) and rounds half to even, as ``torch.round`` does. The rounding passes the
gradient straight through; the clamp zeroes it outside [qmin, qmax], so dy/dx is 1 inside the
range and 0 outside, and the scale gets the LSQ-style gradient when it is trainable.
The whole forward is one autograd node (:class:`FakeQuantizeSTE`), cheaper than composing it.
"""

from __future__ import annotations

import torch


class FakeQuantizeSTE(torch.autograd.Function):
    """Fake quantization with an exact straight-through gradient.

    ``dy/dx`` is exactly 1 inside [qmin, qmax] and 0 outside (no ``(g * s) / s`` rounding);
    ``dy/dscale`` is the LSQ gradient ``(q - zp) - x / scale`` inside and ``q - zp`` outside.
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin: int, qmax: int):
        scaled = x / scale
        q = torch.round(scaled) + zero_point
        inside = (q >= qmin) & (q <= qmax)
        steps = torch.clamp(q, qmin, qmax) - zero_point
        ctx.save_for_backward(inside, steps, scaled, scale)
        return steps * scale

    @staticmethod
    def backward(ctx, grad):
        inside, steps, scaled, scale = ctx.saved_tensors
        grad_x = grad * inside if ctx.needs_input_grad[0] else None
        grad_scale = None
        if ctx.needs_input_grad[1]:
            local = torch.where(inside, steps - scaled, steps)
            grad_scale = (grad * local).sum_to_size(scale.shape)
        return grad_x, grad_scale, None, None, None


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
    if not isinstance(scale, torch.Tensor):
        scale = torch.tensor(scale, dtype=x.dtype, device=x.device)
    return FakeQuantizeSTE.apply(x, scale, _zero_point(x, zero_point, axis), qmin, qmax)


def quantize_linear(x, scale, zero_point, qmin: int, qmax: int, axis, dtype: torch.dtype):
    """ONNX QuantizeLinear: the integer tensor (no gradient)."""
    scale = per_axis(x, scale, axis)
    q = torch.round(x / scale) + _zero_point(x, zero_point, axis)
    return torch.clamp(q, qmin, qmax).to(dtype)


def dequantize_linear(q: torch.Tensor, scale: torch.Tensor, zero_point, axis):
    """ONNX DequantizeLinear: ``(q - zp) * scale`` in the scale's dtype."""
    x = q.to(scale.dtype)
    return (x - _zero_point(x, zero_point, axis)) * per_axis(x, scale, axis)
