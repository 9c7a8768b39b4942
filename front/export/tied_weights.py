"""Tied weights (one tensor under several state_dict names) through the export.

T5's ``shared.weight`` is ``encoder.embed_tokens.weight``; the exporter keeps one of the names
for the initializer (here the second). The reimported module must hold the tensor under every
name, in ``model.state_dict()``'s order, so that ``load_state_dict(model.state_dict())`` is
strict and the keys list equal. So the initializer is renamed to the group's first name in
``state_dict`` order (every node input follows), and the other names go to the model metadata
:data:`qdqforge.graph.meta.ALIASES` as ``[alias, initializer, after]``, ``after`` being the
``state_dict`` name it follows among initializers and aliases (``""`` when first): the runtime
registers the same tensor object there (:mod:`qdqforge.runtime.builder`).
"""

from __future__ import annotations

import json
import logging

import onnx
from torch import nn

from qdqforge.graph import meta

log = logging.getLogger(__name__)


def tie_aliases(proto: onnx.ModelProto, model: nn.Module) -> list[list[str]]:
    """Rename tied initializers to their first ``state_dict`` name; returns the alias triples
    (also written to the model metadata when there are any)."""
    state = model.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    for name, tensor in state.items():
        groups.setdefault(id(tensor), []).append(name)
    present = {t.name for t in proto.graph.initializer}
    aliases: dict[str, str] = {}
    for names in groups.values():
        kept = [n for n in names if n in present]
        if len(names) < 2 or len(kept) != 1:
            continue
        _rename(proto, kept[0], names[0])
        aliases.update({n: names[0] for n in names[1:]})
    triples = _ordered(list(state), aliases, present | set(aliases.values()))
    if triples:
        proto.metadata_props.add(key=meta.ALIASES, value=json.dumps(triples))
        log.info("tied weights kept under %d more names: %s", len(triples), [t[0] for t in triples])
    return triples


def _ordered(order: list[str], aliases: dict[str, str], initializers: set[str]) -> list[list[str]]:
    triples, previous = [], ""
    for name in order:
        if name in aliases:
            triples.append([name, aliases[name], previous])
        if name in aliases or name in initializers:
            previous = name
    return triples


def _rename(proto: onnx.ModelProto, old: str, new: str) -> None:
    if old == new:
        return
    for init in proto.graph.initializer:
        if init.name == old:
            init.name = new
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for value in proto.graph.output:
        if value.name == old:
            value.name = new
