"""ARQ weight quantization (docs/amct.md §4.1): symmetric min-max, per output channel or per tensor.

The weight is laid out channel-major, ``W -> M`` of shape ``(Cout, K)``, then per row ``c``::

    scale[c] = max(|max_c|, |min_c|) / (2^(b-1) - 1)   (/ 2^(b-1) when |min_c| > |max_c|)
    W^[c]    = (clamp(round(M[c] / scale[c]), -2^(b-1), 2^(b-1) - 1)) * scale[c]
    offset   = 0;  an all-zero channel gets scale 1 (docs/amct.md §4.0 degenerate rule) and stays 0.

Layouts: Conv / Linear / Gemm(transB) keep Cout on axis 0. ConvTranspose weights are
``[Cin, Cout/g, k...]``: output channel ``o = gi * Cout/g + j`` lives at ``W[gi*Cin/g : ..., j]``,
so with ``channel_axis=1`` the weight is viewed as ``[g, Cin/g, Cout/g, k...]`` and the two middle
axes swapped before flattening (``groups`` matters only then).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from qdqforge.errors import QuantizationError
from qdqforge.runtime.kernels.fake_quant_ref import per_axis
from qdqforge.runtime.kernels.quant_math import (
    check_finite,
    int_range,
    row_blocks,
    symmetric_scale,
)


class ArqResult(NamedTuple):
    """Per-channel (``[Cout]``) or per-tensor (``[1]``) scale, zero offsets, quantized weight."""

    scale: torch.Tensor
    offset: torch.Tensor
    weight: torch.Tensor


def to_channel_major(w: torch.Tensor, channel_axis: int = 0, groups: int = 1) -> torch.Tensor:
    """View ``w`` as ``(C, K)`` with the output channel on rows (see module docstring)."""
    if channel_axis == 0:
        return w.reshape(w.shape[0], -1)
    if channel_axis == 1 and groups > 1:
        cin, cout_g = w.shape[0], w.shape[1]
        grouped = w.reshape(groups, cin // groups, cout_g, -1).transpose(1, 2)
        return grouped.reshape(groups * cout_g, -1)
    return w.movedim(channel_axis, 0).reshape(w.shape[channel_axis], -1)


def from_channel_major(
    m: torch.Tensor, shape: torch.Size, channel_axis: int = 0, groups: int = 1
) -> torch.Tensor:
    """Inverse of :func:`to_channel_major` for a weight of ``shape``."""
    if channel_axis == 0:
        return m.reshape(shape)
    if channel_axis == 1 and groups > 1:
        cin, cout_g = shape[0], shape[1]
        grouped = m.reshape(groups, cout_g, cin // groups, -1).transpose(1, 2)
        return grouped.reshape(shape)
    moved = [shape[channel_axis], *shape[:channel_axis], *shape[channel_axis + 1 :]]
    return m.reshape(moved).movedim(0, channel_axis)


def arq_scale(m: torch.Tensor, num_bits: int = 8, channel_wise: bool = True) -> torch.Tensor:
    """Symmetric min-max scale of a channel-major ``(C, K)`` weight: ``[C]`` or ``[1]``."""
    flat = m if channel_wise else m.reshape(1, -1)
    lo, hi = torch.aminmax(flat, dim=1)
    return symmetric_scale(lo, hi, num_bits)[0]


def _fake_quantized_rows(
    m: torch.Tensor, per: torch.Tensor, channel_wise: bool, qmin: int, qmax: int
) -> torch.Tensor:
    """``DequantizeLinear(QuantizeLinear(m))`` with zero point 0, row block by row block
    (elementwise: the values of one pass, bounded temporaries), in one reused float buffer:
    ``rint(m / s) + 0`` (the ``+ 0`` turns a -0.0 into +0.0, as the int32 round trip does),
    clamped, times ``s``. Exactly ``quantize_linear`` -> int32 -> ``dequantize_linear``
    (integers in range survive the float round trip; tested byte for byte), without the seven
    temporaries of a block those made, each a fresh allocation: a 1 GiB weight took 1.1-1.2 s
    and ~300 k page faults, now 0.4 s and the output's own 262 k."""
    deq = torch.empty_like(m)
    blocks = row_blocks(m.shape)
    first = blocks[0]
    buffer = torch.empty((first.stop - first.start, *m.shape[1:]), dtype=m.dtype)
    for rows in blocks:
        x = m[rows]
        block = buffer[: x.shape[0]]
        block_scale = per_axis(x, per[rows], 0) if channel_wise else per
        torch.div(x, block_scale, out=block)
        block.round_().add_(0).clamp_(qmin, qmax)
        torch.mul(block, block_scale, out=deq[rows])
    return deq


def arq_quantize(
    weight: torch.Tensor,
    num_bits: int = 8,
    channel_wise: bool = True,
    channel_axis: int = 0,
    groups: int = 1,
    layer: str | None = None,
) -> ArqResult:
    """Quantize a weight with ARQ.

    Args:
        weight: float weight (Conv ``[Cout, Cin/g, k...]``, Linear ``[Cout, Cin]``, ConvTranspose
            ``[Cin, Cout/g, k...]`` with ``channel_axis=1``).
        num_bits: 2..16 (AMCT: 8; 4/6/7 for INT4/INT6/INT7 weights).
        channel_wise: one scale per output channel, else one for the tensor.
        channel_axis: axis holding the output channel (0, or 1 for ConvTranspose).
        groups: convolution groups (used for ConvTranspose's channel order).
        layer: layer name for error messages.

    Returns:
        :class:`ArqResult` with the fake-quantized weight in ``weight``'s shape and dtype.

    Raises:
        QuantizationError: unsupported bit width or a weight that does not split into groups.
        CalibrationError: the weight holds NaN or inf.
    """
    if not 2 <= num_bits <= 16:
        raise QuantizationError(f"layer '{layer}': weight num_bits {num_bits} not in 2..16")
    if channel_axis == 1 and groups > 1 and weight.shape[0] % groups:
        raise QuantizationError(f"layer '{layer}': Cin {weight.shape[0]} not divisible by {groups}")
    check_finite(weight, layer, "weight")
    m = to_channel_major(weight.detach(), channel_axis, groups)
    scale = arq_scale(m, num_bits, channel_wise)
    qmin, qmax = int_range(num_bits)
    per = (scale if channel_wise else scale[0]).to(m.dtype)
    deq = _fake_quantized_rows(m, per, channel_wise, qmin, qmax)
    w_hat = from_channel_major(deq, weight.shape, channel_axis, groups)
    return ArqResult(scale, torch.zeros_like(scale, dtype=torch.int64), w_hat)
