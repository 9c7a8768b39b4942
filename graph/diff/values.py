"""Attribute display strings and constant-tensor comparison (shape, dtype, max|Δ|, rel|Δ|)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper

from qdqforge.graph.diff.model import TensorChange
from qdqforge.graph.numerics import abs_error

MAX_TEXT = 120
SMALL_TENSOR = 8


def attr_text(attr: AttributeProto) -> str:
    """Short display string of an attribute value (tensors as dtype[shape], small ones inline)."""
    kind = attr.type
    if kind == AttributeProto.TENSOR:
        return _tensor_text(attr.t)
    if kind == AttributeProto.GRAPH:
        return f"graph {attr.g.name} ({len(attr.g.node)} nodes)"
    if kind == AttributeProto.GRAPHS:
        return f"{len(attr.graphs)} graphs"
    try:
        value = onnx.helper.get_attribute_value(attr)
    except (ValueError, TypeError):
        return AttributeProto.AttributeType.Name(kind).lower()
    return _clip(_value_text(value))


def dtype_name(data_type: int) -> str:
    """``float32`` for ``TensorProto.FLOAT`` and so on."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(data_type).lower() if data_type else "?"


def attr_key(attr: AttributeProto) -> bytes:
    """Exact identity of an attribute value (tensor contents included, tensor name ignored)."""
    if attr.type == AttributeProto.TENSOR and attr.t.name:
        clone = AttributeProto()
        clone.CopyFrom(attr)
        clone.t.ClearField("name")
        attr = clone
    return attr.SerializeToString(deterministic=True)


def _value_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return str(value)


def _tensor_text(tensor: onnx.TensorProto) -> str:
    head = f"tensor {dtype_name(tensor.data_type)}{list(tensor.dims)}"
    size = int(np.prod(tensor.dims)) if tensor.dims else 1
    if size > SMALL_TENSOR:
        return head
    try:
        values = numpy_helper.to_array(tensor).reshape(-1).tolist()
    except (ValueError, TypeError):
        return head
    return _clip(f"{head} = {_value_text(values)}")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def same_tensor(a: onnx.TensorProto, b: onnx.TensorProto) -> bool | None:
    """True/False when decidable from the protos alone, None when the arrays must be compared."""
    if a.data_type != b.data_type or list(a.dims) != list(b.dims):
        return False
    if a.HasField("raw_data") and b.HasField("raw_data"):
        return a.raw_data == b.raw_data
    return None


def tensor_change(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> TensorChange | None:
    """How constant ``b`` differs from ``a``; None when dtype, shape and values are identical.

    ``max_abs``/``max_rel`` are None when the shapes differ (no element-wise error exists).
    """
    same_kind = a.dtype == b.dtype and a.shape == b.shape
    if same_kind and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
        return None
    max_abs = max_rel = None
    if a.shape == b.shape:
        max_abs, max_rel = abs_rel_error(a, b)
    return TensorChange(
        a_name, b_name, a.shape, b.shape, a.dtype.name, b.dtype.name, max_abs, max_rel
    )


def abs_rel_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``max|b - a|`` and that divided by ``max|a|`` (0 when both are all zero; inf over 0).

    A NaN facing a number, or an infinity facing another value, is an infinite error (absolute
    and relative), never NaN; NaN facing NaN and equal infinities are equal.
    """
    if a.size == 0:
        return 0.0, 0.0
    x = np.asarray(a).astype(np.float64)
    max_abs = abs_error(x, b)
    finite = np.abs(x[np.isfinite(x)])
    scale = float(finite.max()) if finite.size else 0.0  # an infinity is no scale: inf/inf = NaN
    if max_abs == 0.0:
        return 0.0, 0.0
    if math.isinf(max_abs):
        return max_abs, math.inf
    return max_abs, (max_abs / scale if scale > 0 else float("inf"))
