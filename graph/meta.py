"""Metadata keys qdqforge writes into ONNX files.

Node keys live in ``NodeProto.metadata_props``; model keys in ``ModelProto.metadata_props``.
onnx-graphsurgeon drops both, so :class:`qdqforge.graph.ir.Graph` keeps them in side tables.
"""

from __future__ import annotations

import json

from qdqforge.errors import GraphError

PREFIX = "qdqforge."

# node keys
MODULE = "qdqforge.module"  # qualified torch module name, e.g. "layer1.0.conv1"
MODULE_TYPE = "qdqforge.module_type"  # torch class name, e.g. "Conv2d"
PASS = "qdqforge.pass"  # pass that created or last replaced the node
RULE = "qdqforge.rule"  # rule inside that pass
ORIGIN = "qdqforge.from"  # comma-separated names of the nodes it came from
ACTION = "qdqforge.action"  # "create" | "replace"

# model keys
PARAMETERS = "qdqforge.parameters"  # JSON list: initializers that are torch nn.Parameters
BUFFERS = "qdqforge.buffers"  # JSON list: initializers that are persistent torch buffers


def dump_names(names: list[str] | set[str]) -> str:
    """Serialize a name list deterministically (sorted JSON)."""
    return json.dumps(sorted(set(names)))


def load_names(text: str | None, key: str = PARAMETERS) -> list[str]:
    """Parse a name list written by :func:`dump_names`; missing means empty.

    Raises:
        GraphError: ``text`` is not a JSON list of strings (a tampered file); names ``key``.
    """
    if not text:
        return []
    try:
        names = json.loads(text)
    except ValueError as e:
        raise GraphError(f"model metadata {key!r} is not JSON ({e}); re-export the model") from e
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise GraphError(
            f"model metadata {key!r} must be a JSON list of initializer names, got "
            f"{text[:60]!r}; re-export the model"
        )
    return names
