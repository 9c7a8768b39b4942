"""Producer/consumer walks and layer facts (weight of a layer, its channel axis)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def producer(tensor: gs.Tensor) -> gs.Node | None:
    """The node writing ``tensor`` (None for graph inputs and constants)."""
    return tensor.inputs[0] if tensor.inputs else None


def consumers(tensor: gs.Tensor) -> list[gs.Node]:
    return list(tensor.outputs)


def sole_consumer(tensor: gs.Tensor, graph_outputs) -> gs.Node | None:
    """The only reader of ``tensor`` if it has exactly one and is not a graph output."""
    if len(tensor.outputs) != 1 or any(tensor is o for o in graph_outputs):
        return None
    return tensor.outputs[0]


def constant_value(tensor: gs.Tensor | None) -> np.ndarray | None:
    """Value of a constant tensor, else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    return None


def weight_of(node: gs.Node) -> gs.Constant | None:
    """Constant weight of a Conv/ConvTranspose/Gemm/MatMul, looking through one Transpose.

    Linear on 3-D input is exported as ``MatMul(x, Transpose(W))``: the weight is ``W``.
    """
    if node.op not in WEIGHTED_OPS or len(node.inputs) < 2:
        return None
    w = node.inputs[1]
    if isinstance(w, gs.Constant):
        return w
    src = producer(w)
    if src is not None and src.op == "Transpose" and isinstance(src.inputs[0], gs.Constant):
        return src.inputs[0]
    return None


def output_channel_axis(node: gs.Node) -> int:
    """Axis of the stored weight that indexes output channels.

    Conv: 0 ([Cout, Cin/g, k...]); ConvTranspose: 1 ([Cin, Cout/g, k...]); Gemm: 0 when
    transB else 1; MatMul: last axis of the [K, N] operand, or 0 of a Transposed [N, K] weight.
    """
    if node.op == "Conv":
        return 0
    if node.op == "ConvTranspose":
        return 1
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    w = node.inputs[1]
    return 0 if not isinstance(w, gs.Constant) else w.values.ndim - 1
