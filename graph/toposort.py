"""Kahn topological sort with a clear cycle error.

gs's own toposort has reported false cycles and exponential cases; this one is linear in
nodes + edges and names the nodes stuck in a cycle.
"""

from __future__ import annotations

from collections import deque

import onnx_graphsurgeon as gs

from qdqforge.errors import GraphError
from qdqforge.graph.ir import Graph


def toposort(graph: Graph) -> None:
    """Reorder ``graph.gs.nodes`` so every producer precedes its consumers (stable)."""
    nodes = graph.gs.nodes
    indegree, users = _dependencies(nodes)
    ready = deque(i for i, d in enumerate(indegree) if d == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in users[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = [nodes[i].name for i, d in enumerate(indegree) if d > 0]
        raise GraphError(f"graph has a cycle through {len(stuck)} nodes: {', '.join(stuck[:8])}")
    graph.gs.nodes = [nodes[i] for i in order]


def _dependencies(nodes: list[gs.Node]):
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.outputs:
            producer[out.name] = i
    indegree = [0] * len(nodes)
    users: list[list[int]] = [[] for _ in nodes]
    for j, node in enumerate(nodes):
        for src in {producer[t.name] for t in _all_inputs(node) if t.name in producer}:
            if src == j:
                raise GraphError(f"node {node.name!r} ({node.op}) consumes its own output")
            indegree[j] += 1
            users[src].append(j)
    return indegree, users


def _all_inputs(node: gs.Node):
    """Inputs of ``node`` plus tensors its subgraphs (If/Loop bodies) read from outside."""
    yield from node.inputs
    for attr in node.attrs.values():
        if isinstance(attr, gs.Graph):
            for sub in attr.nodes:
                yield from _all_inputs(sub)
