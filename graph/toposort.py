"""Kahn topological sort with a clear cycle error: one for the IR and the runtime's node list.

gs's own toposort has reported false cycles and exponential cases; this one is linear in
nodes + edges and names the nodes stuck in a cycle. Stable: a node waits only for its producers,
and nodes that become ready are taken in their original order (first in, first out)::

    indegree[j] = |producers of j|;  ready = {j : indegree[j] = 0} in order
    take i from ready; for every user j of i: indegree[j] -= 1, ready += j when it reaches 0
    nodes never taken are on (or behind) a cycle -> GraphError naming them
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import onnx_graphsurgeon as gs

from qdqforge.errors import GraphError
from qdqforge.graph.graph_index import GraphIndex
from qdqforge.graph.ir import Graph


def toposort(graph: Graph) -> None:
    """Reorder ``graph.gs.nodes`` so every producer precedes its consumers (stable)."""
    nodes = graph.gs.nodes
    index = GraphIndex(
        [[t.name for t in _all_inputs(n)] for n in nodes],
        [[t.name for t in n.outputs] for n in nodes],
    )
    order = topological_order(index, [n.name for n in nodes], [n.op for n in nodes])
    graph.gs.nodes = [nodes[i] for i in order]


def topological_order(index: GraphIndex, names: Sequence[str], ops: Sequence[str]) -> list[int]:
    """Positions of ``index``'s nodes, producers first, stable with respect to their order.

    Args:
        index: producers and consumers of the nodes.
        names, ops: each node's name and op type, for the error messages.

    Raises:
        GraphError: a node reads its own output, or nodes are on a cycle (names the first 8).
    """
    dependencies = [index.dependencies(j) for j in range(len(names))]
    users: list[list[int]] = [[] for _ in names]
    for j, sources in enumerate(dependencies):
        if j in sources:
            raise GraphError(f"node {names[j]!r} ({ops[j]}) consumes its own output")
        for i in sources:
            users[i].append(j)
    indegree = [len(sources) for sources in dependencies]
    ready = deque(i for i, d in enumerate(indegree) if d == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in users[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
    if len(order) != len(names):
        stuck = [names[i] or ops[i] for i, d in enumerate(indegree) if d > 0]
        raise GraphError(f"graph has a cycle through {len(stuck)} nodes: {', '.join(stuck[:8])}")
    return order


def _all_inputs(node: gs.Node):
    """Inputs of ``node`` plus tensors its subgraphs (If/Loop bodies) read from outside."""
    yield from node.inputs
    for attr in node.attrs.values():
        if isinstance(attr, gs.Graph):
            for sub in attr.nodes:
                yield from _all_inputs(sub)
