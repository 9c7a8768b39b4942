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


def load_aliases(text: str | None) -> list[list[str]]:
    """``[alias, initializer, after]`` triples from an :data:`ALIASES` value (empty if absent).

    Raises:
        GraphError: not a JSON list of three-string lists (a tampered file).
    """
    if not text:
        return []
    try:
        triples = json.loads(text)
    except ValueError as e:
        raise GraphError(
            f"model metadata {ALIASES!r} is not JSON ({e}); re-export the model"
        ) from e
    if not isinstance(triples, list) or not all(
        isinstance(t, list) and len(t) == 3 and all(isinstance(n, str) for n in t) for t in triples
    ):
        raise GraphError(
            f"model metadata {ALIASES!r} must be a JSON list of [alias, initializer, after] "
            f"names, got {text[:60]!r}; re-export the model"
        )
    return triples


def model_value(proto, key: str) -> str | None:
    """The value of model metadata ``key`` in an ``onnx.ModelProto`` (None when absent)."""
    return next((p.value for p in proto.metadata_props if p.key == key), None)
