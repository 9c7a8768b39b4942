"""Gemm and MatMul, plus the pattern ``Add(MatMul(x, Transpose(W)), b)`` -> ``F.linear``.

The exporter writes ``nn.Linear`` on a 3-D input as Transpose(W) + MatMul + Add so the weight keeps
its torch name; folding it back into one ``F.linear(x, W, b)`` runs the same kernel as the
original module (step-time parity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdqforge.runtime.registry import Emitter, GraphView, OnnxNode, converter, pattern_converter


@converter("Gemm", versions=(7, 9, 11, 13))
def convert_gemm(node: OnnxNode, emit: Emitter):
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)
    a, b = emit.value(0), emit.value(1)
    c = emit.value(2) if emit.has(2) else None
    if trans_b and not trans_a and alpha == 1.0 and beta == 1.0:
        return emit.call(F.linear, a, b, c)  # nn.Linear: the weight is (out, in)
    a = emit.method("t", a) if trans_a else a
    b = emit.method("t", b) if trans_b else b
    y = emit.call(torch.matmul, a, b)
    y = y if alpha == 1.0 else emit.call(torch.mul, y, alpha)
    if c is None:
        return y
    c = c if beta == 1.0 else emit.call(torch.mul, c, beta)
    return emit.call(torch.add, y, c)


@converter("MatMul", versions=(1, 9, 13))
def convert_matmul(node: OnnxNode, emit: Emitter):
    return emit.call(torch.matmul, emit.value(0), emit.value(1))


def _only_consumer(graph: GraphView, value: str, node: OnnxNode) -> bool:
    users = graph.consumers(value)
    return len(users) == 1 and users[0] is node and not graph.is_output(value)


def _transposed_weight(matmul: OnnxNode, graph: GraphView) -> OnnxNode | None:
    """The ``Transpose(W, perm=[1, 0])`` of a 2-D parameter feeding MatMul input 1 only."""
    transpose = graph.producer(matmul.inputs[1])
    if transpose is None or transpose.op_type != "Transpose" or transpose.domain:
        return None
    weight = graph.initializer(transpose.inputs[0])
    if weight is None or weight.ndim != 2 or list(transpose.attr("perm", [1, 0])) != [1, 0]:
        return None
    if not graph.is_param(transpose.inputs[0]):
        return None
    return transpose if _only_consumer(graph, transpose.outputs[0], matmul) else None


def match_linear(add: OnnxNode, graph: GraphView) -> tuple[OnnxNode, ...] | None:
    """``Add(MatMul(x, Transpose(W)), b)`` with W a 2-D parameter and b a 1-D initializer."""
    for side in (0, 1):
        matmul = graph.producer(add.inputs[side])
        bias = add.inputs[1 - side]
        if matmul is None or matmul.op_type != "MatMul" or matmul.domain:
            continue
        b = graph.initializer(bias)
        if b is None or b.ndim != 1 or not graph.is_param(bias):
            continue
        transpose = _transposed_weight(matmul, graph)
        if transpose is not None and _only_consumer(graph, matmul.outputs[0], add):
            return (transpose, matmul, add)
    return None


def match_linear_no_bias(matmul: OnnxNode, graph: GraphView) -> tuple[OnnxNode, ...] | None:
    """``MatMul(x, Transpose(W))`` with W a 2-D parameter (``nn.Linear(bias=False)``)."""
    transpose = _transposed_weight(matmul, graph)
    return None if transpose is None else (transpose, matmul)


@pattern_converter("linear", root="Add", match=match_linear, priority=10)
def convert_linear(nodes: tuple[OnnxNode, ...], emit: Emitter):
    transpose, matmul, add = nodes
    bias = add.inputs[1] if add.inputs[0] == matmul.outputs[0] else add.inputs[0]
    x, w, b = emit.value(matmul.inputs[0]), emit.value(transpose.inputs[0]), emit.value(bias)
    return emit.call(F.linear, x, w, b)


@pattern_converter("linear_no_bias", root="MatMul", match=match_linear_no_bias)
def convert_linear_no_bias(nodes: tuple[OnnxNode, ...], emit: Emitter):
    transpose, matmul = nodes
    return emit.call(F.linear, emit.value(matmul.inputs[0]), emit.value(transpose.inputs[0]))
