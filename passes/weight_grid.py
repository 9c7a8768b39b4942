"""A quantized layer's weight on its integer grid, shared by the fake-quant and deploy writers.

``W_q = clamp(rint(W / s_w), qmin, qmax)`` with ``s_w`` per output channel along ``axis`` (or one
scale); rint rounds half to even like QuantizeLinear and the torch fake-quant. The grid is
``[-128, 127]``, or ``[-8, 7]`` for a record whose ``dst_type`` is ``INT4`` (stored in int8; the
fake-quant model clamps the float weight to ``[-8 s_w, 7 s_w]`` first so its int8 Q/DQ pair
reproduces the 4-bit grid exactly).
"""

from __future__ import annotations

import numpy as np

INT4_RANGE, INT8_RANGE = (-8, 7), (-128, 127)


def weight_range(rec) -> tuple[int, int]:
    """``(qmin, qmax)`` of the layer's weight integers."""
    return INT4_RANGE if getattr(rec, "dst_type", None) == "INT4" else INT8_RANGE


def channel_shape(ndim: int, axis: int | None, size: int) -> list[int]:
    """Shape that broadcasts ``size`` per-channel values along ``axis`` of an ``ndim`` tensor."""
    if axis is None or size == 1:
        return []
    return [-1 if d == axis else 1 for d in range(ndim)]


def weight_integers(w: np.ndarray, scale: np.ndarray, axis: int | None, rec) -> np.ndarray:
    """``W_q`` as int8 (module docstring)."""
    scale = np.asarray(scale, np.float32)
    qmin, qmax = weight_range(rec)
    q = np.rint(np.asarray(w, np.float32) / scale.reshape(channel_shape(w.ndim, axis, scale.size)))
    return np.clip(q, qmin, qmax).astype(np.int8)


def clamp_to_grid(w: np.ndarray, scale: np.ndarray, axis: int | None, rec) -> np.ndarray | None:
    """``W`` clamped to ``[qmin s_w, qmax s_w]``, or None when the int8 Q/DQ clamp suffices."""
    qmin, qmax = weight_range(rec)
    if (qmin, qmax) == INT8_RANGE:
        return None
    scale = np.asarray(scale, np.float32)
    s = scale.reshape(channel_shape(w.ndim, axis, scale.size))
    return np.clip(np.asarray(w, np.float32), qmin * s, qmax * s).astype(np.float32)
