"""Elementwise arithmetic: Add Sub Mul Div Pow Mod, unary math, variadic Max/Min/Sum/Mean.

Binary ops on shape values (:class:`Sym`) are computed entry by entry on Python ints, so shape
arithmetic such as ``Div(Gather(Shape(x), 2), 8)`` stays cheap and dynamic. Div on integer tensors
truncates toward zero like onnxruntime.
"""

from __future__ import annotations

import operator

import numpy as np
import onnx
import torch

from qdqforge.runtime.kernels.onnx_ops import onnx_div, trunc_div
from qdqforge.runtime.registry import Emitter, OnnxNode, Sym, converter

_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
_FLOATS.add(onnx.TensorProto.BFLOAT16)
_INTS = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT8}
_INTS |= {onnx.TensorProto.UINT8, onnx.TensorProto.INT16}
_BINARY = (1, 6, 7, 13, 14)


def sym_binary(emit: Emitter, op, fold) -> Sym | None:
    """Entry-wise ``op`` when one input is a Sym and the other a Sym or int constant."""
    a, b = emit.raw(0), emit.raw(1)
    if not (isinstance(a, Sym) or isinstance(b, Sym)):
        return None
    ia, ib = emit.ints(0), emit.ints(1)
    if ia is None or ib is None or (len(ia) != len(ib) and 1 not in (len(ia), len(ib))):
        return None
    n = max(len(ia), len(ib))
    ia, ib = (ia * n if len(ia) == 1 else ia), (ib * n if len(ib) == 1 else ib)
    items = tuple(
        fold(x, y) if isinstance(x, int) and isinstance(y, int) else emit.call(op, x, y)
        for x, y in zip(ia, ib)
    )
    scalar = all(
        (isinstance(r, Sym) and r.scalar) or (isinstance(r, np.ndarray) and r.ndim == 0)
        for r in (a, b)
    )
    return Sym(items, scalar=scalar)


def _binary(emit: Emitter, fn, op):
    sym = sym_binary(emit, op, op)
    if sym is not None:
        return sym
    return emit.call(fn, emit.operand(0, 1), emit.operand(1, 0))


@converter("Add", versions=_BINARY)
def convert_add(node: OnnxNode, emit: Emitter):
    return _binary(emit, operator.add, operator.add)


@converter("Sub", versions=_BINARY)
def convert_sub(node: OnnxNode, emit: Emitter):
    return _binary(emit, operator.sub, operator.sub)


@converter("Mul", versions=_BINARY)
def convert_mul(node: OnnxNode, emit: Emitter):
    return _binary(emit, operator.mul, operator.mul)


@converter("Div", versions=_BINARY)
def convert_div(node: OnnxNode, emit: Emitter):
    sym = sym_binary(emit, trunc_div, trunc_div)
    if sym is not None:
        return sym
    dtype = emit.dtype(0)
    if dtype in _FLOATS:
        return emit.call(operator.truediv, emit.operand(0, 1), emit.operand(1, 0))
    if dtype in _INTS:
        return emit.call(torch.div, emit.value(0), emit.operand(1, 0), rounding_mode="trunc")
    return emit.call(onnx_div, emit.value(0), emit.value(1))


@converter("Pow", versions=(1, 7, 12, 13, 15))
def convert_pow(node: OnnxNode, emit: Emitter):
    return emit.call(torch.pow, emit.value(0), emit.operand(1, 0))


@converter("Mod", versions=(10, 13))
def convert_mod(node: OnnxNode, emit: Emitter):
    fn = torch.fmod if node.attr("fmod", 0) else torch.remainder
    return emit.call(fn, emit.value(0), emit.scalar(1))


_UNARY = {
    "Sqrt": (torch.sqrt, (1, 6, 13)),
    "Neg": (torch.neg, (1, 6, 13)),
    "Exp": (torch.exp, (1, 6, 13)),
    "Log": (torch.log, (1, 6, 13)),
    "Abs": (torch.abs, (1, 6, 13)),
    "Floor": (torch.floor, (1, 6, 13)),
    "Ceil": (torch.ceil, (1, 6, 13)),
    "Reciprocal": (torch.reciprocal, (1, 6, 13)),
    "Sign": (torch.sign, (9, 13)),
    "Round": (torch.round, (11,)),
    "Sin": (torch.sin, (7,)),
    "Cos": (torch.cos, (7,)),
    "Tan": (torch.tan, (7,)),
    "Erf": (torch.erf, (9, 13)),
    "IsNaN": (torch.isnan, (9, 13, 20)),
    "Not": (torch.logical_not, (1,)),
}


def convert_unary(node: OnnxNode, emit: Emitter):
    return emit.call(_UNARY[node.op_type][0], emit.value(0))


for _op, (_fn, _versions) in _UNARY.items():
    converter(_op, versions=_versions)(convert_unary)


def _variadic(emit: Emitter, n: int, fn):
    out = emit.value(0)
    for i in range(1, n):
        out = emit.call(fn, out, emit.value(i))
    return out


@converter("Max", versions=(6, 8, 12, 13))
def convert_max(node: OnnxNode, emit: Emitter):
    return _variadic(emit, len(node.inputs), torch.maximum)


@converter("Min", versions=(6, 8, 12, 13))
def convert_min(node: OnnxNode, emit: Emitter):
    return _variadic(emit, len(node.inputs), torch.minimum)


@converter("Sum", versions=(6, 8, 13))
def convert_sum(node: OnnxNode, emit: Emitter):
    return _variadic(emit, len(node.inputs), operator.add)


@converter("Mean", versions=(6, 8, 13))
def convert_mean(node: OnnxNode, emit: Emitter):
    total = _variadic(emit, len(node.inputs), operator.add)
    return emit.call(operator.truediv, total, len(node.inputs))
