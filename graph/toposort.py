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
from collections.abc import Callable, Iterable

import onnx_graphsurgeon as gs

from qdqforge.errors import GraphError
from qdqforge.graph.graph_index import GraphIndex
from qdqforge.graph.ir import Graph


def toposort(graph: Graph) -> None:
    """Reorder ``graph.gs.nodes`` so every producer precedes its consumers (stable)."""
    nodes = graph.gs.nodes
    index = GraphIndex(
        [_input_names(n) for n in nodes], [[t.name for t in n.outputs] for n in nodes]
    )
    order = topological_order(index, lambda i: (nodes[i].name, nodes[i].op))
    graph.gs.nodes = [nodes[i] for i in order]


def topological_order(index: GraphIndex, name_op: Callable[[int], tuple[str, str]]) -> list[int]:
    """Positions of ``index``'s nodes, producers first, stable with respect to their order.

    Args:
        index: producers of the nodes' tensors.
        name_op: a node's ``(name, op type)`` by position, for the error messages.

    Raises:
        GraphError: a node reads its own output, or nodes are on a cycle (names the first 8).
    """
    producer = index.producer
    dependencies = [{producer[t] for t in read if t in producer} for read in index.inputs]
    users: list[list[int]] = [[] for _ in dependencies]
    for j, sources in enumerate(dependencies):
        if j in sources:
            name, op = name_op(j)
            raise GraphError(f"node {name!r} ({op}) consumes its own output")
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
    if len(order) != len(dependencies):
        stuck = [name or op for name, op in (name_op(i) for i, d in enumerate(indegree) if d > 0)]
        raise GraphError(f"graph has a cycle through {len(stuck)} nodes: {', '.join(stuck[:8])}")
    return order


def _input_names(node: gs.Node) -> list[str]:
    """Inputs of ``node`` plus tensors its subgraphs (If/Loop bodies) read from outside."""
    names = [t.name for t in node.inputs]
    for attr in node.attrs.values():
        if isinstance(attr, gs.Graph):
            for sub in attr.nodes:
                names += _input_names(sub)
    return names


def producers_first(
    candidates: Iterable[int], movable: set[int], producers_of: Callable[[int], Iterable]
) -> list[int]:
    """Each of ``candidates`` in turn (once), right after those of its ``movable`` producers
    not placed yet, theirs first (depth first, without recursion; ``producers_of(i)``: the
    indices of ``i``'s producers in input order, None for a graph input or initializer). With the
    nodes that are pure functions of the weights as ``movable`` and the others first among the
    candidates, each such node runs just before its first reader instead of before the first
    layer (the reimport's order, the segments of ``graph.segmented_run``)."""
    placed: set[int] = set()
    order: list[int] = []
    for start in candidates:
        stack = [(start, False)]
        while stack:
            node, ready = stack.pop()
            if node in placed:
                continue
            if ready:
                placed.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            waiting = [p for p in producers_of(node) if p in movable and p not in placed]
            stack.extend((producer, False) for producer in reversed(waiting))
    return order
