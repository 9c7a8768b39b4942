"""The changed neighbourhood: added, removed and changed nodes plus one hop around them.

A and B are merged into one small graph: a matched node appears once (under its B identity),
a removed node keeps its A identity, and edges from both graphs are kept. The page lays it out
itself; the picture is capped so a diff touching thousands of nodes still draws quickly.
"""

from __future__ import annotations

from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.match import Matching
from qdqforge.graph.diff.model import Neighbourhood, PictureNode

MAX_PICTURE_NODES = 300

Key = tuple[str, int]  # ("b", B index) or ("a", A index) for nodes only in A


def neighbourhood(
    m: Matching, changed_b: set[int], limit: int = MAX_PICTURE_NODES
) -> Neighbourhood:
    """Picture of every added/removed/changed node and its direct producers and consumers."""
    status = _core_status(m, changed_b)
    chosen: dict[Key, None] = {}
    total: set[Key] = set()
    for key in status:
        around = [key, *_neighbours(m, key)]
        total.update(around)
        for k in around:
            if len(chosen) < limit:
                chosen.setdefault(k)
    ids = {key: i for i, key in enumerate(chosen)}
    nodes = tuple(_picture_node(m, key, ids[key], status.get(key, "context")) for key in ids)
    edges = sorted({(ids[s], ids[d]) for s, d in _edges(m, ids) if s != d})
    return Neighbourhood(nodes, tuple(edges), len(total), len(total) > len(ids))


def _core_status(m: Matching, changed_b: set[int]) -> dict[Key, str]:
    """Added, changed and removed nodes in B's order (a removed node sits after the B partner
    of the last matched A node before it), so a capped picture shows one region whole."""
    order: dict[Key, float] = {}
    status: dict[Key, str] = {}
    for bi in range(len(m.b.nodes)):
        if bi not in m.how or bi in changed_b:
            status[("b", bi)] = "added" if bi not in m.how else "changed"
            order[("b", bi)] = bi
    anchor = -1
    for ai in range(len(m.a.nodes)):
        if ai in m.a_to_b:
            anchor = m.a_to_b[ai]
        else:
            status[("a", ai)] = "removed"
            order[("a", ai)] = anchor + 0.5
    return {key: status[key] for key in sorted(status, key=order.__getitem__)}


def _key_of_a(m: Matching, ai: int) -> Key:
    bi = m.a_to_b.get(ai)
    return ("b", bi) if bi is not None else ("a", ai)


def _neighbours(m: Matching, key: Key) -> list[Key]:
    side, i = key
    found = []
    if side == "b":
        found += [("b", j) for j in _adjacent(m.b, i)]
    a_index = i if side == "a" else m.b_to_a.get(i)
    if a_index is not None:
        found += [_key_of_a(m, j) for j in _adjacent(m.a, a_index)]
    return found


def _adjacent(g: DiffIndex, i: int) -> list[int]:
    node = g.nodes[i]
    producers = [g.producer[t] for t in node.input if t in g.producer]
    consumers = [j for t in node.output for j in g.consumers.get(t, ())]
    return [*producers, *consumers]


def _edges(m: Matching, ids: dict[Key, int]):
    for g, key_of in ((m.b, lambda j: ("b", j)), (m.a, lambda j: _key_of_a(m, j))):
        for t, p in g.producer.items():
            src = key_of(p)
            if src not in ids:
                continue
            for c in g.consumers.get(t, ()):
                dst = key_of(c)
                if dst in ids:
                    yield src, dst


def _picture_node(m: Matching, key: Key, node_id: int, status: str) -> PictureNode:
    g = m.b if key[0] == "b" else m.a
    node = g.nodes[key[1]]
    name = node.name or next((o for o in node.output if o), "")
    return PictureNode(node_id, name, node.op_type, status)
