"""Float decompositions of onnxruntime's fused integer kernels (for :mod:`.kernel_audit`).

Each function takes the fused node (and the values of its inputs, for ranks and scale shapes)
and returns standard ONNX nodes reading the same input names and computing the same result
through DequantizeLinear -> float op -> QuantizeLinear:

* QLinearConv (ONNX and com.microsoft, ``channels_last``): ``Q(Conv(DQ x, DQ w, DQ B))``
* QGemm (com.microsoft): ``[Q](Gemm(DQ A, DQ B, DQ C))``; a float output without ``y_scale``
* QLinearMatMul: ``Q(MatMul(DQ a, DQ b))``; MatMulIntegerToFloat: ``MatMul(DQ A, DQ B) + bias``
* QLinearAveragePool, QLinearGlobalAveragePool (``channels_last``): ``Q(pool(DQ x))``
* QLinearAdd, QLinearMul: ``Q(DQ a op DQ b)``

An int32 bias is on the grid ``x_scale * w_scale`` (per output channel). Per-channel weight
scales run along the weight's output axis: 0 for Conv and a transposed Gemm weight, the last
axis of a MatMul weight.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper

Decomposition = tuple[list[onnx.NodeProto], str]


class _Nodes:
    """Builds the decomposition's nodes under names prefixed by the fused node's name."""

    def __init__(self, node: onnx.NodeProto) -> None:
        self.base, self.nodes = f"{node.name}/ref", []

    def add(self, op: str, inputs: list[str], tag: str, **attrs) -> str:
        out = f"{self.base}/{tag}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def dq(self, x: str, scale: str, zp: str, values, axis: int, tag: str) -> str:
        per_axis = np.asarray(values[scale]).size > 1
        inputs = [x, scale, zp] if zp else [x, scale]
        return self.add("DequantizeLinear", inputs, tag, **({"axis": axis} if per_axis else {}))

    def bias(self, b: str, x_scale: str, w_scale: str, values) -> str:
        scale = self.add("Mul", [x_scale, w_scale], "bias_scale")
        values = {**values, scale: np.asarray(values[x_scale]) * np.asarray(values[w_scale])}
        return self.dq(b, scale, "", values, 0, "bias")


def _arg(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if i < len(node.input) else ""


def _attrs(node: onnx.NodeProto, drop=("channels_last",)) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in drop}


def _channels_last(node: onnx.NodeProto) -> bool:
    return bool(_attrs(node, ()).get("channels_last", 0))


def _to_first(b: _Nodes, x: str, rank: int) -> str:
    return b.add("Transpose", [x], "to_nchw", perm=[0, rank - 1, *range(1, rank - 1)])


def _to_last(b: _Nodes, x: str, rank: int) -> str:
    return b.add("Transpose", [x], "to_nhwc", perm=[0, *range(2, rank), 1])


def qlinear_conv(node: onnx.NodeProto, values) -> Decomposition:
    b, i = _Nodes(node), node.input
    rank, last = np.asarray(values[i[3]]).ndim, _channels_last(node)
    x = _to_first(b, i[0], rank) if last else i[0]
    inputs = [b.dq(x, i[1], i[2], values, 1, "x"), b.dq(i[3], i[4], i[5], values, 0, "w")]
    if _arg(node, 8):
        inputs.append(b.bias(i[8], i[1], i[4], values))
    y = b.add("Conv", inputs, "conv", **_attrs(node))
    q = b.add("QuantizeLinear", [y, i[6], i[7]], "q")
    return b.nodes, _to_last(b, q, rank) if last else q


def qgemm(node: onnx.NodeProto, values) -> Decomposition:
    b, i, attrs = _Nodes(node), node.input, _attrs(node)
    w_axis = 0 if attrs.get("transB", 0) else 1
    inputs = [b.dq(i[0], i[1], i[2], values, 1, "a"), b.dq(i[3], i[4], i[5], values, w_axis, "b")]
    if _arg(node, 6):
        inputs.append(b.bias(i[6], i[1], i[4], values))
    y = b.add("Gemm", inputs, "gemm", **attrs)
    if not _arg(node, 7):
        return b.nodes, y
    return b.nodes, b.add("QuantizeLinear", [y, i[7], _arg(node, 8)], "q")


def qlinear_matmul(node: onnx.NodeProto, values) -> Decomposition:
    b, i = _Nodes(node), node.input
    last = np.asarray(values[i[3]]).ndim - 1
    a, w = b.dq(i[0], i[1], i[2], values, 1, "a"), b.dq(i[3], i[4], i[5], values, last, "b")
    y = b.add("MatMul", [a, w], "matmul")
    return b.nodes, b.add("QuantizeLinear", [y, i[6], i[7]], "q")


def matmul_integer_to_float(node: onnx.NodeProto, values) -> Decomposition:
    b, i = _Nodes(node), node.input
    last = np.asarray(values[i[1]]).ndim - 1
    a = b.dq(i[0], i[2], _arg(node, 4), values, 1, "a")
    w = b.dq(i[1], i[3], _arg(node, 5), values, last, "b")
    y = b.add("MatMul", [a, w], "matmul")
    return b.nodes, b.add("Add", [y, i[6]], "bias") if _arg(node, 6) else y


def _pool(op: str) -> Callable:
    def decompose(node: onnx.NodeProto, values) -> Decomposition:
        b, i = _Nodes(node), node.input
        rank, last = np.asarray(values[i[0]]).ndim, _channels_last(node)
        x = b.dq(i[0], i[1], i[2], values, 1, "x")
        x = _to_first(b, x, rank) if last else x
        y = b.add(op, [x], "pool", **_attrs(node))
        q = b.add("QuantizeLinear", [_to_last(b, y, rank) if last else y, i[3], i[4]], "q")
        return b.nodes, q

    return decompose


def _binary(op: str) -> Callable:
    def decompose(node: onnx.NodeProto, values) -> Decomposition:
        b, i = _Nodes(node), node.input
        x, y = b.dq(i[0], i[1], i[2], values, 1, "a"), b.dq(i[3], i[4], i[5], values, 1, "b")
        z = b.add(op, [x, y], "op")
        return b.nodes, b.add("QuantizeLinear", [z, i[6], _arg(node, 7)], "q")

    return decompose


DECOMPOSE: dict[str, Callable[[onnx.NodeProto, dict], Decomposition]] = {
    "QLinearConv": qlinear_conv,
    "QGemm": qgemm,
    "QLinearMatMul": qlinear_matmul,
    "MatMulIntegerToFloat": matmul_integer_to_float,
    "QLinearAveragePool": _pool("AveragePool"),
    "QLinearGlobalAveragePool": _pool("GlobalAveragePool"),
    "QLinearAdd": _binary("Add"),
    "QLinearMul": _binary("Mul"),
}
