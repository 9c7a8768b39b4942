"""Check each integer kernel onnxruntime fused into a graph against the float math it replaces.

A default onnxruntime session rewrites ``DQ -> Conv/Gemm/MatMul -> Q`` node groups into integer
kernels (QLinearConv, QGemm, QLinearMatMul, MatMulIntegerToFloat, ...). Those kernels are meant to
compute ``Q(op(DQ(x), DQ(w)) + DQ(b))``; on x86 CPUs without VNNI, u8 x s8 products are summed in
pairs into int16 with saturation (``vpmaddubsw``), and a pair beyond 32767 changes the result.

The audit takes the graph the session runs (``numerics.optimized_graph``), runs it once with every
input and output of the fused nodes exposed, and recomputes each fused node from those same inputs
as its float decomposition, for example::

    QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)
      == Q(Conv(DQ(x, sx, zx), DQ(w, sw, zw, axis 0), DQ(B, sx * sw, axis 0)), sy, zy)

(``channels_last`` kernels get a Transpose to NCHW and back). The decomposition runs with every
optimization off, so no integer kernel is involved. An integer output is compared in steps of its
grid, a float output relative to its largest magnitude; each node is one :class:`KernelCheck`.
Node types without a decomposition here are listed as not audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from qdqforge.graph import numerics
from qdqforge.graph.exposed_run import run_exposed
from qdqforge.graph.held_arrays import array_of
from qdqforge.graph.kernel_decompose import DECOMPOSE
from qdqforge.graph.mapped import is_mapped, release
from qdqforge.graph.segment_plan import SEGMENT_BYTES


@dataclass(frozen=True)
class KernelCheck:
    """One fused node against its float decomposition.

    Attributes:
        node: the fused node's name in onnxruntime's optimized graph.
        op_type: its op (``QLinearConv``, ...).
        inputs: its input tensor names (initializer names tell which layer it runs).
        total: output values compared.
        differ: integer outputs that differ (float outputs: beyond ``float_rtol`` of the range).
        max_steps: largest integer difference (0 for float outputs).
        max_rel: largest difference relative to ``max|reference|``.
        integer: the output is on an integer grid (else float).
        weight_max: largest ``|w|`` of its int8 weight input (:data:`WEIGHT_INPUT`), None when
            it has none or it is not int8.
    """

    node: str
    op_type: str
    inputs: tuple[str, ...]
    total: int
    differ: int
    max_steps: int
    max_rel: float
    integer: bool = True
    weight_max: int | None = None


def fused_integer_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes of ``model`` whose op is an integer kernel with a decomposition here."""
    return [n for n in model.graph.node if n.op_type in DECOMPOSE]


def audited_tensors(optimized: onnx.ModelProto) -> list[str]:
    """The computed tensors :func:`audit_kernels` reads: the fused nodes' inputs and outputs."""
    constants = {i.name for i in optimized.graph.initializer}
    nodes = fused_integer_nodes(optimized)
    return sorted({t for n in nodes for t in [*n.input, n.output[0]] if t and t not in constants})


def audit_kernels(
    optimized: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    float_rtol: float = 1e-5,
    exposed: Mapping[str, np.ndarray] | None = None,
) -> list[KernelCheck]:
    """Every fused integer node of ``optimized`` against its decomposition (module docstring).
    ``exposed``: the values of :func:`audited_tensors` from a run the caller made already
    (optimizations off, as :func:`~qdqforge.graph.exposed_run.run_exposed` runs it); without
    it the audit runs ``optimized`` on ``feeds`` itself."""
    nodes = fused_integer_nodes(optimized)
    if not nodes:
        return []
    values = {i.name: array_of(i) for i in optimized.graph.initializer}
    wanted = audited_tensors(optimized)
    if exposed is None:
        exposed = run_exposed(optimized, wanted, feeds)
    values.update({name: exposed[name] for name in wanted})
    references = _references(nodes, values)
    return [_check(n, values, want, float_rtol) for n, want in zip(nodes, references)]


def _check(
    node: onnx.NodeProto, values: dict[str, np.ndarray], want: np.ndarray, float_rtol: float
) -> KernelCheck:
    got = np.asarray(values[node.output[0]])
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-12)
    integer = got.dtype.kind in "iu"
    differ = int((diff > 0).sum()) if integer else int((diff > float_rtol * scale).sum())
    return KernelCheck(
        node.name,
        node.op_type,
        tuple(node.input),
        int(got.size),
        differ,
        int(diff.max(initial=0)) if integer else 0,
        float(diff.max(initial=0.0)) / scale,
        integer,
        _weight_max(node, values),
    )


WEIGHT_INPUT = {"QLinearConv": 3, "QGemm": 3, "QLinearMatMul": 3, "MatMulIntegerToFloat": 1}


def _weight_max(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> int | None:
    index = WEIGHT_INPUT.get(node.op_type)
    if index is None or index >= len(node.input) or node.input[index] not in values:
        return None
    weight = np.asarray(values[node.input[index]])
    if weight.dtype != np.int8 or weight.size == 0:
        return None  # u8 weights or activations (a MatMul of two activations): unknown
    try:
        return max(int(weight.max()), -int(weight.min()))  # no wider copy of a large weight
    finally:
        release(weight)  # read from a map (a saved model over 2 GB): its pages go back


def _references(nodes: list[onnx.NodeProto], values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Each node's output recomputed by its float decomposition, optimizations off, in one
    session per group of nodes (:func:`_node_groups`; one group below 2 GB of weights): the
    decompositions only read the fused nodes' inputs and name what they make under the node's
    own prefix (made unique here by its index), so each computes what it computed in a session
    of its own, and the audit builds and runs one session instead of one per fused node
    (BERT-base's QDQ model: 72; small graphs, so the save's time hardly moves: its 18 remaining
    sessions, of the whole models, take the 5-6 s of session set-up)."""
    references = []
    for group in _node_groups(list(enumerate(nodes)), values):
        references += _group_references(group, values)
        for name in {n for _, node in group for n in node.input if n}:
            release(values[name])  # a weight read from a map: its pages go back
    return references


def _node_groups(indexed: list, values: dict[str, np.ndarray]) -> list[list]:
    """Consecutive ``(index, node)`` pairs reading at most :data:`SEGMENT_BYTES` of weights
    that view a read-only map (a saved model over 2 GB: one group's weights and their float
    decompositions at a time, not every layer's at once)."""
    groups, current, held = [], [], 0
    for index, node in indexed:
        names = {n for n in node.input if n and is_mapped(values[n])}
        cost = sum(values[n].nbytes for n in names)
        if current and held + cost > SEGMENT_BYTES:
            groups.append(current)
            current, held = [], 0
        current.append((index, node))
        held += cost
    return [*groups, current] if current else groups


def _group_references(group: list, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    built, outputs, names = [], [], []
    for index, node in group:
        unique = onnx.NodeProto()
        unique.CopyFrom(node)
        unique.name = f"{index}:{node.name}"
        decomposition, output = DECOMPOSE[node.op_type](unique, values)
        built += decomposition
        outputs.append(output)
        names += [n for n in node.input if n]
    names = list(dict.fromkeys(names))
    graph = helper.make_graph(
        built,
        "decompositions",
        [helper.make_tensor_value_info(n, _elem(values[n]), values[n].shape) for n in names],
        [onnx.ValueInfoProto(name=output) for output in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    feeds = {n: values[n] for n in names}
    arena = numerics.arena_for(feeds.values())
    return numerics.session(model, arena=arena).run(outputs, feeds)


def _elem(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype)
