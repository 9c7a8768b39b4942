"""Pair the nodes of graph A with the nodes of graph B.

Keys are tried in order; each only looks at nodes the earlier keys left unmatched:

1. provenance: a B node stamped ``action=replace`` whose ``qdqforge.from`` names an A node
   (fold_bn's Conv says it came from the Conv and the BN; it pairs with the Conv);
2. a non-empty node name unique on both sides;
3. the tuple of output tensor names, unique on both sides;
4. a structural signature: op, domain, attributes and the keys of the input producers, refined
   over two rounds (a light Weisfeiler-Lehman, as the onnxdiff tool does); equal signatures pair
   up in graph order.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from qdqforge.graph import meta as keys
from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.values import attr_key

STAMP_KEYS = (keys.PASS, keys.RULE, keys.ORIGIN, keys.ACTION)


@dataclass
class Matching:
    """``pairs``: (A index, B index, key name) in B order; the rest is unmatched."""

    a: DiffIndex
    b: DiffIndex
    a_to_b: dict[int, int] = field(default_factory=dict)
    b_to_a: dict[int, int] = field(default_factory=dict)
    how: dict[int, str] = field(default_factory=dict)

    def pair(self, ai: int, bi: int, how: str) -> None:
        self.a_to_b[ai] = bi
        self.b_to_a[bi] = ai
        self.how[bi] = how

    @property
    def pairs(self) -> list[tuple[int, int, str]]:
        return sorted(((ai, bi, self.how[bi]) for ai, bi in self.a_to_b.items()), key=_by_b)

    def a_left(self) -> list[int]:
        return [i for i in range(len(self.a.nodes)) if i not in self.a_to_b]

    def b_left(self) -> list[int]:
        return [i for i in range(len(self.b.nodes)) if i not in self.how]


def _by_b(pair: tuple[int, int, str]) -> int:
    return pair[1]


def match_nodes(a: DiffIndex, b: DiffIndex) -> Matching:
    """Match A nodes to B nodes by provenance, name, outputs, then structure."""
    m = Matching(a, b)
    _by_provenance(m)
    _by_unique_key(m, "name", lambda g, i: g.nodes[i].name)
    _by_unique_key(m, "outputs", _outputs_key)
    _by_structure(m)
    return m


def _outputs_key(g: DiffIndex, i: int) -> tuple[str, ...]:
    outputs = tuple(g.nodes[i].output)
    return outputs if any(outputs) else ()


def _by_provenance(m: Matching) -> None:
    for bi in range(len(m.b.nodes)):
        prov = m.b.provenance(bi)
        if prov is None or prov.action != "replace" or _stale_stamp(m, bi):
            continue
        # An origin that still exists in B under its own name was not replaced by this node.
        gone = [n for n in prov.from_nodes if m.b.by_name.get(n, bi) == bi]
        candidates = [m.a.by_name[n] for n in gone if n in m.a.by_name]
        candidates = [ai for ai in candidates if ai not in m.a_to_b]
        if candidates:
            m.pair(_pick(m, bi, candidates), bi, "provenance")


def _stale_stamp(m: Matching, bi: int) -> bool:
    """The same stamp already sat on the same-named A node: an older pass made it, not B's."""
    ai = m.a.by_name.get(m.b.nodes[bi].name)
    if ai is None:
        return False
    return all(m.a.meta[ai].get(k) == m.b.meta[bi].get(k) for k in STAMP_KEYS)


def _pick(m: Matching, bi: int, candidates: list[int]) -> int:
    node = m.b.nodes[bi]
    for ai in candidates:
        if m.a.nodes[ai].name == node.name:
            return ai
    for ai in candidates:
        if m.a.nodes[ai].op_type == node.op_type:
            return ai
    return candidates[0]


def _by_unique_key(m: Matching, how: str, key_of) -> None:
    a_keys = _unique(m.a, m.a_left(), key_of)
    for key, bi in _unique(m.b, m.b_left(), key_of).items():
        if key in a_keys:
            m.pair(a_keys[key], bi, how)


def _unique(g: DiffIndex, indices: list[int], key_of) -> dict:
    """key -> index for the non-empty keys that occur once among ``indices``."""
    keyed = [(key_of(g, i), i) for i in indices]
    counts = Counter(k for k, _ in keyed)
    return {k: i for k, i in keyed if k and counts[k] == 1}


def _by_structure(m: Matching) -> None:
    a_left, b_left = m.a_left(), m.b_left()
    if not a_left or not b_left:
        return
    a_sig = _signatures(m.a, a_left, lambda p: m.a_to_b.get(p))
    b_sig = _signatures(m.b, b_left, lambda p: p if p in m.how else None)
    pending: dict[int, deque[int]] = defaultdict(deque)
    for ai in a_left:
        pending[a_sig[ai]].append(ai)
    for bi in b_left:
        queue = pending.get(b_sig[bi])
        if queue:
            m.pair(queue.popleft(), bi, "structure")


def _signatures(g: DiffIndex, indices: list[int], matched_b) -> dict[int, int]:
    """Two rounds of (op, domain, attrs, producer keys) hashing over the unmatched ``indices``."""
    base = {i: hash(_local_key(g, i)) for i in indices}
    sig = dict(base)
    for _ in range(2):
        sig = {i: hash((base[i], *_input_keys(g, i, sig, matched_b))) for i in indices}
    return sig


def _local_key(g: DiffIndex, i: int) -> tuple:
    node = g.nodes[i]
    attrs = tuple(sorted((a.name, attr_key(a)) for a in node.attribute))
    return (node.domain, node.op_type, len(node.input), len(node.output), attrs)


def _input_keys(g: DiffIndex, i: int, sig: dict[int, int], matched_b) -> list[tuple]:
    return [_input_key(g, t, sig, matched_b) for t in g.nodes[i].input]


def _input_key(g: DiffIndex, tensor: str, sig: dict[int, int], matched_b) -> tuple:
    if not tensor:
        return ("",)
    if tensor in g.initializers:
        t = g.initializers[tensor]
        return ("const", t.data_type, tuple(t.dims))
    p = g.producer.get(tensor)
    if p is None:
        return ("input", tensor)
    partner = matched_b(p)
    return ("matched", partner) if partner is not None else ("node", sig.get(p, 0))
