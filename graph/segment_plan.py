"""Where a graph is cut into segments (``graph.segmented_run``): consecutive nodes costing at
most a budget of weight bytes each, a node computed from weights alone run with its first reader.

Graph order (ONNX keeps it topological), except that a node reading only weights and
initializers (a weight's DequantizeLinear, Transpose) moves to just before its first reader::

    DQ(w0) DQ(w1) MatMul(x, w0') MatMul(h, w1')   ->   [DQ(w0) MatMul] [DQ(w1) MatMul]

A segment costs the bytes of the weights it reads that count (``counted``: those viewing a map
for a fed session, all of them for one that copies its weights), a weight read through such a
node also a float32 tensor of its elements (a session may compute every such node of its
segment before the first layer); a node costing more than the budget is a segment alone. Each
segment's inputs are the names it reads and does not compute; its outputs what it computes
that a later segment reads or the graph returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.graph.mapped import is_mapped
from qdqforge.graph.toposort import producers_first

SEGMENT_BYTES = 2**28  # weight bytes a segment costs at most (one node may cost more)


@dataclass(frozen=True)
class Segment:
    """Nodes run as one session: their indices in the graph, in run order (graph order, a node
    computed from weights alone moved to its first reader: :func:`late_weight_order`)."""

    nodes: tuple[int, ...]
    inputs: tuple[str, ...]  # names its nodes read that it does not compute
    outputs: tuple[str, ...]  # names it computes that a later segment reads or the graph returns


def node_reads(node: onnx.NodeProto) -> set[str]:
    """Every outer name ``node`` reads: its inputs and what its subgraphs read from outside."""
    names = {n for n in node.input if n}
    for attribute in node.attribute:
        for sub in [attribute.g] if attribute.HasField("g") else attribute.graphs:
            names |= _outer_reads(sub)
    return names


def _outer_reads(graph: onnx.GraphProto) -> set[str]:
    inner = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    inner |= {o for node in graph.node for o in node.output}
    read = set().union(*(node_reads(node) for node in graph.node))
    read |= {o.name for o in graph.output}
    return read - inner


def plan_segments(
    graph: onnx.GraphProto,
    weights: Mapping[str, np.ndarray],
    budget: int = SEGMENT_BYTES,
    counted: Callable[[np.ndarray], bool] = is_mapped,
) -> list[Segment]:
    """Cut ``graph``'s nodes into segments costing at most ``budget`` bytes of the ``counted``
    weights (default: those viewing a map), each node computed from weights alone (a weight's
    DequantizeLinear) placed with its first reader. A weight such a node reads costs its bytes
    and a float32 tensor of its elements (what the node materializes: an int8 weight 5x its
    bytes), since a session may compute every such node of its segment before the first layer."""
    reads = [node_reads(node) for node in graph.node]
    derived = _weight_only(graph, reads, set(weights))
    widened = {n for i in derived for n in reads[i]}
    cost = {
        n: a.nbytes + (4 * a.size if n in widened else 0) for n, a in weights.items() if counted(a)
    }
    groups, current, held = [], [], set()
    for index in late_weight_order(graph, reads, derived):
        fresh = {n for n in reads[index] if n in cost} - held
        if current and fresh and sum(cost[n] for n in held | fresh) > budget:
            groups.append(current)
            current, held = [], set()
        current.append(index)
        held |= fresh
    if current:
        groups.append(current)
    return _with_boundaries(graph, groups, reads)


def _weight_only(graph: onnx.GraphProto, reads: list[set[str]], weights: set[str]) -> set[int]:
    """Indices of the nodes that read only weights and initializers, directly or through such
    nodes (a weight's DequantizeLinear, Transpose, Reshape)."""
    constant = weights | {t.name for t in graph.initializer}
    weight_only = set()
    for index, node in enumerate(graph.node):
        if reads[index] <= constant:
            weight_only.add(index)
            constant |= {o for o in node.output if o}
    return weight_only


def late_weight_order(graph: onnx.GraphProto, reads: list[set[str]], weight_only: set[int]):
    """Node indices in graph order, except that the nodes ``weight_only`` (computed from weights
    alone) come right before their first reader: a run in graph order would compute every
    weight's float value before the first layer and hold them all. Still topological: a node's
    producers come before it."""
    producer = {o: index for index, node in enumerate(graph.node) for o in node.output if o}
    candidates = [
        *(i for i in range(len(graph.node)) if i not in weight_only),
        *sorted(weight_only),
    ]
    return producers_first(
        candidates, weight_only, lambda i: sorted({producer.get(n) for n in reads[i]} - {None})
    )


def _with_boundaries(graph: onnx.GraphProto, groups, reads) -> list[Segment]:
    made = [{o for i in group for o in graph.node[i].output if o} for group in groups]
    read = [set().union(*(reads[i] for i in group)) for group in groups]
    returned = {o.name for o in graph.output}
    segments = []
    for k, group in enumerate(groups):
        later = set().union(*read[k + 1 :]) | returned
        segments.append(
            Segment(
                tuple(group),
                tuple(sorted(read[k] - made[k])),
                tuple(sorted(made[k] & later)),
            )
        )
    return segments
