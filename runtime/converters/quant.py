"""QuantizeLinear / DequantizeLinear.

``DQ(Q(x))`` becomes ONE :func:`fake_quantize` call with a straight-through estimator; the scale
stays a graph tensor (trainable when the exporter marked it as a parameter). Standalone Q and DQ
compute the integer tensor and its dequantization (deploy-style int8 weights).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch

from qdqforge.errors import ConversionError
from qdqforge.runtime.converters.constant import torch_dtype
from qdqforge.runtime.kernels.fake_quant_ref import (
    dequantize_linear,
    fake_quantize,
    quantize_linear,
)
from qdqforge.runtime.registry import Emitter, GraphView, OnnxNode, converter, pattern_converter

T = onnx.TensorProto
RANGES = {
    T.INT8: (-128, 127),
    T.UINT8: (0, 255),
    T.INT16: (-32768, 32767),
    T.UINT16: (0, 65535),
    T.INT32: (-(2**31), 2**31 - 1),
    T.INT4: (-8, 7),
    T.UINT4: (0, 15),
}
_CONTAINER = {T.INT4: torch.int8, T.UINT4: torch.uint8}
_VERSIONS = (10, 13, 19, 21)


def quant_type(node: OnnxNode, emit: Emitter, zp: str) -> int:
    """Integer type of the grid: the zero point's, else ``output_dtype``, else uint8 (spec)."""
    dtype = emit.dtype(zp) if zp else None
    if dtype is None:
        dtype = node.attr("output_dtype", 0) or T.UINT8
    if dtype not in RANGES:
        raise ConversionError(f"{node.op_type} node {node.name!r}: type {dtype} is not supported")
    return dtype


def _zero_point(emit: Emitter, name: str):
    if not name:
        return 0
    const = emit.const(name)
    if const is not None and not np.any(const):
        return 0
    if const is not None and const.size == 1:
        return int(const.reshape(-1)[0])
    return emit.value(name)


def _axis(node: OnnxNode, emit: Emitter, scale: str) -> int | None:
    if node.attr("block_size", 0):
        raise ConversionError(f"{node.op_type} node {node.name!r}: blocked quantization")
    shape = emit.shape(scale)
    return node.attr("axis", 1) if shape is not None and len(shape) == 1 else None


def _input(node: OnnxNode, i: int) -> str:
    return node.inputs[i] if i < len(node.inputs) else ""


def match_qdq(dq: OnnxNode, graph: GraphView) -> tuple[OnnxNode, ...] | None:
    """``DQ(Q(x))`` where DQ is Q's only reader and both use the same scale and zero point."""
    q = graph.producer(dq.inputs[0])
    if q is None or q.op_type != "QuantizeLinear" or q.domain:
        return None
    users = graph.consumers(q.outputs[0])
    if len(users) != 1 or graph.is_output(q.outputs[0]):
        return None
    for i in (1, 2):
        a, b = _input(q, i), _input(dq, i)
        if a != b and not _same_const(graph, a, b):
            return None
    if q.attr("axis", 1) != dq.attr("axis", 1):
        return None
    return (q, dq)


def _same_const(graph: GraphView, a: str, b: str) -> bool:
    va = graph.initializer(a) if a else None
    vb = graph.initializer(b) if b else None
    if va is None or vb is None or graph.is_param(a) or graph.is_param(b):
        return False
    return va.dtype == vb.dtype and np.array_equal(va, vb)


@pattern_converter("qdq", root="DequantizeLinear", match=match_qdq, priority=20)
def convert_qdq(nodes: tuple[OnnxNode, ...], emit: Emitter):
    q, _ = nodes
    scale, zp = q.inputs[1], _input(q, 2)
    qmin, qmax = RANGES[quant_type(q, emit, zp)]
    axis = _axis(q, emit, scale)
    x = emit.value(q.inputs[0])
    return emit.call(fake_quantize, x, emit.value(scale), _zero_point(emit, zp), qmin, qmax, axis)


@converter("QuantizeLinear", versions=_VERSIONS)
def convert_quantize_linear(node: OnnxNode, emit: Emitter):
    scale, zp = node.inputs[1], _input(node, 2)
    dtype = quant_type(node, emit, zp)
    qmin, qmax = RANGES[dtype]
    torch_type = _CONTAINER.get(dtype) or torch_dtype(dtype)
    x, s = emit.value(0), emit.value(1)
    axis = _axis(node, emit, scale)
    return emit.call(quantize_linear, x, s, _zero_point(emit, zp), qmin, qmax, axis, torch_type)


@converter("DequantizeLinear", versions=_VERSIONS)
def convert_dequantize_linear(node: OnnxNode, emit: Emitter):
    scale, zp = node.inputs[1], _input(node, 2)
    axis = _axis(node, emit, scale)
    return emit.call(dequantize_linear, emit.value(0), emit.value(1), _zero_point(emit, zp), axis)
