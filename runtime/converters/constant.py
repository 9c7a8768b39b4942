"""Constant, ConstantOfShape, Cast, CastLike, Identity: values mostly folded at build time."""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch

from qdqforge.errors import ConversionError
from qdqforge.graph.tensor_budget import FOLD_ELEMENTS
from qdqforge.runtime.registry import Emitter, OnnxNode, Sym, converter

_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}


def torch_dtype(elem_type: int) -> torch.dtype:
    """torch dtype of an ONNX elem type."""
    np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    if elem_type == onnx.TensorProto.BFLOAT16:
        return torch.bfloat16
    return torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype


def constant_value(node: OnnxNode) -> np.ndarray:
    """The value a Constant node outputs (any of the ``value*`` attributes)."""
    attrs = node.attrs
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "sparse_value" in attrs:
        return onnx.numpy_helper.to_array(attrs["sparse_value"])
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dtype)
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(list(attrs[key]), dtype=dtype)
    raise ConversionError(f"Constant node {node.name!r}: unsupported attributes {sorted(attrs)}")


@converter("Constant", versions=(1, 9, 11, 12, 13, 19, 21))
def convert_constant(node: OnnxNode, emit: Emitter):
    return constant_value(node)


@converter("Identity", versions=(1, 13, 14, 16, 19, 21))
def convert_identity(node: OnnxNode, emit: Emitter):
    return emit.raw(0)


@converter("ConstantOfShape", versions=(9, 20, 21))
def convert_constant_of_shape(node: OnnxNode, emit: Emitter):
    fill = node.attr("value")
    fill = np.zeros(1, dtype=np.float32) if fill is None else np.asarray(fill).reshape(-1)
    shape = emit.ints(0)
    static = shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)
    if static and 0 <= math.prod(shape) <= FOLD_ELEMENTS:  # bigger: allocated when run
        return np.full(shape, fill[0], dtype=fill.dtype)
    dtype = torch.from_numpy(fill[:1].copy()).dtype
    size = shape if shape is not None else emit.method("tolist", emit.value(0))
    return emit.call(torch.full, size, fill[0].item(), dtype=dtype, device=emit.device())


@converter("Cast", versions=(6, 9, 13, 19, 21))
def convert_cast(node: OnnxNode, emit: Emitter):
    to = node.attr("to")
    raw = emit.raw(0)
    if isinstance(raw, Sym) and to in _INT_TYPES:
        return raw
    if isinstance(raw, np.ndarray):
        return raw.astype(onnx.helper.tensor_dtype_to_np_dtype(to))
    if emit.dtype(0) == to:
        return raw
    return emit.method("to", emit.value(0), torch_dtype(to))


@converter("CastLike", versions=(15, 19, 21))
def convert_cast_like(node: OnnxNode, emit: Emitter):
    target, raw = emit.dtype(1), emit.raw(0)
    if target is not None and emit.dtype(0) == target:
        return raw
    if target is not None and isinstance(raw, np.ndarray):  # only the type is read from input 1
        return raw.astype(onnx.helper.tensor_dtype_to_np_dtype(target))
    if target is not None:
        return emit.method("to", emit.value(0), torch_dtype(target))
    return emit.method("to", emit.value(0), emit.call(getattr, emit.value(1), "dtype"))
