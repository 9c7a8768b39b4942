"""Data model of a graph diff: frozen dataclasses that the HTML page, the CLI and tests share.

Everything here is plain data (str, int, float, bool, tuples, dicts, nested dataclasses) so that
:mod:`qdqforge.graph.diff.json_codec` can write it to JSON and read it back without loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qdqforge.errors import GraphError
from qdqforge.graph.diff import json_codec as diff_json


@dataclass(frozen=True)
class ModelSummary:
    """Header facts about one side of the diff."""

    name: str
    graph_name: str
    opset: int
    ir_version: int
    nodes: int
    initializers: int
    size_bytes: int
    producer: str = ""


@dataclass(frozen=True)
class Provenance:
    """Who made a node: the ``qdqforge.*`` metadata a pass stamped on it."""

    pass_name: str
    rule: str = ""
    action: str = ""
    from_nodes: tuple[str, ...] = ()

    def describe(self) -> str:
        """Human line such as ``created by pass fold_bn, rule fold_into_conv, from node a``."""
        parts = [f"created by pass {self.pass_name or '?'}"]
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.from_nodes:
            noun = "node" if len(self.from_nodes) == 1 else "nodes"
            parts.append(f"from {noun} {', '.join(self.from_nodes)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class NodeInfo:
    """One node as the diff shows it; attribute values are display strings."""

    name: str
    op: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, str]
    provenance: Provenance | None = None
    module: str = ""


@dataclass(frozen=True)
class AttrChange:
    """An attribute present on one side only (value None on the other) or with new value."""

    name: str
    a: str | None
    b: str | None


@dataclass(frozen=True)
class InputChange:
    """Input slot ``index`` reads ``a`` in graph A and ``b`` in graph B (None: slot absent)."""

    index: int
    a: str | None
    b: str | None


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of a constant tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class TensorChange:
    """Content change of a constant; ``max_abs``/``max_rel`` are None when shapes differ.

    ``max_rel`` is ``max|b - a| / max|a|`` (0 when both are all zero).
    """

    a_name: str
    b_name: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    max_abs: float | None
    max_rel: float | None


@dataclass(frozen=True)
class NodeChange:
    """A matched pair of nodes that differ; ``matched_by`` names the key that paired them."""

    a: NodeInfo
    b: NodeInfo
    matched_by: str
    attrs: tuple[AttrChange, ...] = ()
    inputs: tuple[InputChange, ...] = ()
    outputs_changed: bool = False
    initializers: tuple[TensorChange, ...] = ()

    @property
    def op_changed(self) -> bool:
        return (self.a.op, self.a.domain) != (self.b.op, self.b.domain)


@dataclass(frozen=True)
class IoChange:
    """A graph input or output (``kind``) that was added, removed or changed type/shape."""

    kind: str
    change: str
    name: str
    a: str | None
    b: str | None


@dataclass(frozen=True)
class InitializerDiff:
    """Initializers compared by name."""

    added: tuple[TensorInfo, ...] = ()
    removed: tuple[TensorInfo, ...] = ()
    changed: tuple[TensorChange, ...] = ()
    unchanged: int = 0


@dataclass(frozen=True)
class TensorError:
    """Numeric error of one tensor both graphs compute; ``diverged``: over the threshold."""

    name: str
    node: str
    op: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    diverged: bool


@dataclass(frozen=True)
class Numerics:
    """Per-tensor errors in topological order of graph B and the first diverging tensor."""

    threshold: float
    tensors: tuple[TensorError, ...]
    first_divergence: str | None = None


@dataclass(frozen=True)
class PictureNode:
    """A node of the neighbourhood picture; ``status``: added/removed/changed/context."""

    id: int
    name: str
    op: str
    status: str


@dataclass(frozen=True)
class Neighbourhood:
    """Changed nodes plus one hop around them, as a small graph the page lays out itself."""

    nodes: tuple[PictureNode, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()
    total: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class GraphDiff:
    """What changed from graph A to graph B.

    Attributes:
        a, b: header facts of both models.
        op_counts: op type (``domain::op`` outside the default domain) -> (count in A, in B).
        io: graph input/output changes.
        added, removed: nodes only in B / only in A.
        changed: matched nodes that differ; ``unchanged`` counts the matched ones that do not.
        initializers: initializer changes by name.
        neighbourhood: changed nodes +-1 hop, for the page's picture.
        numerics: per-tensor errors when the diff was given inputs, else None.
    """

    a: ModelSummary
    b: ModelSummary
    op_counts: dict[str, tuple[int, int]]
    io: tuple[IoChange, ...]
    added: tuple[NodeInfo, ...]
    removed: tuple[NodeInfo, ...]
    changed: tuple[NodeChange, ...]
    unchanged: int
    initializers: InitializerDiff
    neighbourhood: Neighbourhood
    numerics: Numerics | None = None
    format_version: int = 1

    @property
    def added_names(self) -> set[str]:
        return {n.name for n in self.added}

    @property
    def removed_names(self) -> set[str]:
        return {n.name for n in self.removed}

    @property
    def changed_names(self) -> set[str]:
        """Names in graph B of the changed nodes."""
        return {c.b.name for c in self.changed}

    def op_deltas(self) -> dict[str, int]:
        """op -> count in B minus count in A, for ops whose count changed."""
        return {op: b - a for op, (a, b) in self.op_counts.items() if a != b}

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (non-finite floats as the strings "NaN"/"Infinity")."""
        return diff_json.to_plain(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialize to a JSON string that :meth:`from_json` reads back to an equal object."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict) -> GraphDiff:
        return diff_json.from_plain(cls, data)

    @classmethod
    def from_json(cls, text: str) -> GraphDiff:
        """Parse what :meth:`to_json` wrote.

        Raises:
            GraphError: the text is not a GraphDiff JSON document.
        """
        try:
            data = json.loads(text)
        except ValueError as e:
            raise GraphError(f"GraphDiff JSON is not valid JSON: {e}") from e
        return cls.from_dict(data)
