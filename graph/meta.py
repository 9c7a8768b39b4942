"""Metadata keys qdqforge writes into ONNX files.

Node keys live in ``NodeProto.metadata_props``; model keys in ``ModelProto.metadata_props``.
onnx-graphsurgeon drops both, so :class:`qdqforge.graph.ir.Graph` keeps them in side tables.
"""

from __future__ import annotations

import json

PREFIX = "qdqforge."

# node keys
MODULE = "qdqforge.module"  # qualified torch module name, e.g. "layer1.0.conv1"
MODULE_TYPE = "qdqforge.module_type"  # torch class name, e.g. "Conv2d"
PASS = "qdqforge.pass"  # pass that created or last replaced the node
RULE = "qdqforge.rule"  # rule inside that pass
ORIGIN = "qdqforge.from"  # comma-separated names of the nodes it came from
ACTION = "qdqforge.action"  # "create" | "replace"
PADDING_IDX = "qdqforge.padding_idx"  # Gather of an nn.Embedding(padding_idx=p) weight: "p"

# model keys
PARAMETERS = "qdqforge.parameters"  # JSON list: initializers that are torch nn.Parameters
BUFFERS = "qdqforge.buffers"  # JSON list: initializers that are persistent torch buffers
FROZEN = "qdqforge.frozen"  # JSON list: parameters with requires_grad False (kept frozen)
# JSON list of [alias, initializer, after]: another state_dict name of a tied tensor, and the
# state_dict name (initializer or alias) it follows ("" when it comes first)
ALIASES = "qdqforge.aliases"


def dump_names(names: list[str] | set[str]) -> str:
    """Serialize a name list deterministically (sorted JSON)."""
    return json.dumps(sorted(set(names)))


def load_names(text: str | None) -> list[str]:
    """Parse a name list written by :func:`dump_names`; missing means empty."""
    if not text:
        return []
    return list(json.loads(text))


def load_aliases(text: str | None) -> list[list[str]]:
    """``[alias, initializer, after]`` triples from an :data:`ALIASES` value (empty if absent)."""
    return [list(t) for t in json.loads(text)] if text else []


def model_value(proto, key: str) -> str | None:
    """The value of model metadata ``key`` in an ``onnx.ModelProto`` (None when absent)."""
    return next((p.value for p in proto.metadata_props if p.key == key), None)
