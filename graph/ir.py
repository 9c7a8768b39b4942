"""The graph every pass works on: an onnx-graphsurgeon graph plus the side tables gs drops.

gs loses ``NodeProto.metadata_props`` and ``ModelProto.metadata_props`` on import; we keep them in
``node_meta`` (keyed by node name, so node names must stay unique) and ``model_meta``, and write
them back in :func:`qdqforge.graph.io.to_proto`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import onnx_graphsurgeon as gs

from qdqforge.graph import meta as keys


@dataclass
class Graph:
    """A gs graph with node metadata, model metadata and opset imports.

    Attributes:
        gs: the onnx-graphsurgeon graph (nodes, tensors, inputs, outputs).
        node_meta: node name -> metadata dict (module name, provenance, ...).
        model_meta: ModelProto-level metadata (parameter names, ...).
        opset_imports: domain -> version, as the model declares it.
        ir_version: ONNX IR version to write back.
    """

    gs: gs.Graph
    node_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    model_meta: dict[str, str] = field(default_factory=dict)
    opset_imports: dict[str, int] = field(default_factory=dict)
    ir_version: int | None = None
    parameter_names: set[str] = field(default_factory=set)
    buffer_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The name lists travel as JSON in model metadata; keep them as sets while in memory.
        self.parameter_names |= set(
            keys.load_names(self.model_meta.pop(keys.PARAMETERS, None), keys.PARAMETERS)
        )
        self.buffer_names |= set(
            keys.load_names(self.model_meta.pop(keys.BUFFERS, None), keys.BUFFERS)
        )

    @property
    def opset(self) -> int:
        """Default-domain opset version."""
        return self.opset_imports.get("", self.opset_imports.get("ai.onnx", 0))

    @property
    def nodes(self) -> list[gs.Node]:
        return self.gs.nodes

    def meta(self, node: gs.Node) -> dict[str, str]:
        """Metadata dict of ``node`` (created empty on first use)."""
        return self.node_meta.setdefault(node.name, {})

    def module_of(self, node: gs.Node) -> str | None:
        """Qualified torch module name the node came from, if the exporter recorded it."""
        return self.node_meta.get(node.name, {}).get(keys.MODULE)

    def stamp(
        self, node: gs.Node, pass_name: str, rule: str, origin=(), action: str = "create"
    ) -> None:
        """Record who made ``node``: pass, rule and the nodes it came from."""
        entry = self.meta(node)
        entry[keys.PASS] = pass_name
        entry[keys.RULE] = rule
        entry[keys.ACTION] = action
        names = [o if isinstance(o, str) else o.name for o in origin]
        if names:
            entry[keys.ORIGIN] = ",".join(names)

    @property
    def parameters(self) -> set[str]:
        """Initializer names that are torch parameters (trainable)."""
        return self.parameter_names

    def add_parameters(self, names) -> None:
        self.parameter_names.update(names)

    @property
    def buffers(self) -> set[str]:
        """Initializer names that are persistent torch buffers (BN running stats, ...)."""
        return self.buffer_names

    def add_buffers(self, names) -> None:
        self.buffer_names.update(names)

    def metadata_props(self) -> dict[str, str]:
        """Model metadata to write: ``model_meta`` plus the parameter and buffer name lists."""
        props = dict(self.model_meta)
        if self.parameter_names:
            props[keys.PARAMETERS] = keys.dump_names(self.parameter_names)
        if self.buffer_names:
            props[keys.BUFFERS] = keys.dump_names(self.buffer_names)
        return props

    def copy(self) -> Graph:
        """Deep copy (tensors, nodes and side tables)."""
        return Graph(
            self.gs.copy(),
            copy.deepcopy(self.node_meta),
            dict(self.model_meta),
            dict(self.opset_imports),
            self.ir_version,
            set(self.parameter_names),
            set(self.buffer_names),
        )
