"""A quantized layer's weight on its integer grid, shared by the fake-quant, QDQ and deploy writers.

``W_q = clamp(rint(W / s_w), qmin, qmax)`` with ``s_w`` per output channel along ``axis`` (or one
scale); rint rounds half to even like QuantizeLinear and the torch fake-quant. The grid is the
record's ``dst_type``: ``[-128, 127]`` (INT8, or no ``dst_type``), ``[-64, 63]`` (INT7: AMCT's
7-bit weights and ``weight_reduce_range``), ``[-32, 31]`` (INT6), ``[-8, 7]`` (INT4); all are
stored in int8. ``W^ = W_q * s_w`` (float32) is the weight the fake-quant model computes with.

One value needs care: a weight at ``qmin`` (-128, where ``|min| > |max|`` made ARQ divide by 128)
in a channel whose folded BatchNorm gamma is negative becomes ``-qmin`` (+128) after folding
(``W' = W g``, ``s_w' = s_w |g|``). int8 cannot hold it: the QDQ and deploy models clamp it to
``qmax`` (AMCT's re-quantization does the same); the fake-quant model keeps the QAT module's
weight in float. :func:`clamped_weights` counts what the int8 models lose there.
"""

from __future__ import annotations

import numpy as np
import torch

from qdqforge.errors import PassError
from qdqforge.graph.mapped import release
from qdqforge.runtime.kernels.quant_math import row_blocks

WEIGHT_TYPE_BITS = {"INT4": 4, "INT6": 6, "INT7": 7, "INT8": 8}


def weight_bits(rec) -> int:
    """Bit width of the layer's weight grid, from the record's ``dst_type`` (8 when absent)."""
    return WEIGHT_TYPE_BITS.get(getattr(rec, "dst_type", None) or "INT8", 8)


def weight_type_field(bits: int) -> str | None:
    """The ``dst_type`` to record for ``bits``-bit weights: None (AMCT's default INT8) or INTn."""
    return None if bits == 8 else f"INT{bits}"


def weight_range(rec) -> tuple[int, int]:
    """``(qmin, qmax)`` of the layer's weight integers."""
    bits = weight_bits(rec)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def channel_shape(ndim: int, axis: int | None, size: int) -> list[int]:
    """Shape that broadcasts ``size`` per-channel values along ``axis`` of an ``ndim`` tensor."""
    if axis is None or size == 1:
        return []
    return [-1 if d == axis else 1 for d in range(ndim)]


def check_channels(w: np.ndarray, scale: np.ndarray, axis: int | None, layer: str) -> None:
    """PassError unless ``scale`` has one value, or one per channel of ``w`` along ``axis``."""
    channels = 1 if axis is None else w.shape[axis]
    if scale.size not in (1, channels):
        raise PassError(
            f"layer '{layer}' has {scale.size} scale_w values for {channels} weight channels "
            "(grouped ConvTranspose per-channel weights are not supported yet)"
        )


def weight_integers(
    w: np.ndarray, scale: np.ndarray, axis: int | None, rec, *, transposed: bool = False
) -> np.ndarray:
    """``W_q`` as int8 (module docstring); ``transposed`` (a 2-D ``w``): ``W_q^T``, contiguous,
    written block by block (MatMulInteger's ``[Cin, Cout]`` of a Linear weight), never holding
    ``W_q`` and its transpose at once: on the 2.3 GB MLP that transient was the deploy save's
    peak, and numpy's transposing copy took 5x torch's (8192 x 8192 int8: 0.50 s vs 0.09 s).
    The float32 -> int8 cast is exact (integers in range), as numpy's assignment."""
    qmin, qmax = weight_range(rec)
    shape = np.shape(w)
    if transposed and len(shape) != 2:
        raise PassError(f"a transposed weight must be 2-D, got shape {list(shape)}")
    integers = np.empty(shape[::-1] if transposed else shape, np.int8)
    target = torch.from_numpy(integers).t() if transposed else integers
    for rows, rounded, _ in _rounded_blocks(w, scale, axis):
        np.clip(rounded, qmin, qmax, out=rounded)
        if transposed:
            target[rows].copy_(torch.from_numpy(rounded))
        else:
            integers[rows] = rounded
    return integers


def _rounded_blocks(w: np.ndarray, scale: np.ndarray, axis: int | None):
    """``(rows, rint(W[rows] / s), s)`` in float32 for row blocks of ``W`` (``s`` the block's
    scales, shaped to broadcast): elementwise, so the values of one pass, with temporaries of
    ~16 MB instead of ``W``'s size (the QAT save of a > 2 GB model peaked here). A ``W`` mapped
    from external data (``save_model``) hands each block's pages back once its reader has
    resumed (:func:`qdqforge.graph.mapped.release`)."""
    w = np.asarray(w, np.float32)
    scale = np.asarray(scale, np.float32).reshape(channel_shape(w.ndim, axis, np.size(scale)))
    per_row = axis == 0 and scale.ndim > 0
    for rows in row_blocks(w.shape) if w.ndim else [...]:
        block_scale = scale[rows] if per_row else scale
        ratio = np.asarray(w[rows] / block_scale, np.float32)
        yield rows, np.rint(ratio, out=ratio), block_scale
        release(w[rows])


def off_grid_count(w: np.ndarray, scale: np.ndarray, axis: int | None, rec, layer: str) -> int:
    """How many weights differ from ``W^ = W_q * s_w`` (float32, the value a DequantizeLinear of
    ``W_q`` gives): 0 for a weight on the record's grid. Row block by row block, like the
    integers (``save_model``'s record check held ``W^`` and a mask of the whole weight)."""
    scale = np.asarray(scale, np.float32)
    check_channels(w, scale, axis, layer)
    qmin, qmax = weight_range(rec)
    w = np.asarray(w, np.float32)
    off = 0
    for rows, rounded, block_scale in _rounded_blocks(w, scale, axis):
        np.clip(rounded, qmin, qmax, out=rounded)
        rounded *= block_scale  # the same float32 product as W_q * s_w
        off += int(np.count_nonzero(rounded != w[rows]))
    return off


def clamped_weights(w: np.ndarray, scale: np.ndarray, axis: int | None, rec) -> int:
    """How many weights of a grid-valued ``w`` round beyond ``qmax`` (module docstring)."""
    qmax = weight_range(rec)[1]
    return sum(int((rounded > qmax).sum()) for _, rounded, _ in _rounded_blocks(w, scale, axis))
