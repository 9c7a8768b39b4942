"""Which torch module each ONNX node comes from: annotate at export, query afterwards.

Node metadata ``qdqforge.module`` holds the qualified module name (``layer1.0.conv1``; ``""`` for
functional ops in the top-level ``forward``) and ``qdqforge.module_type`` its class name
(``Conv2d``). Configs and records key their layers on this map.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import onnx
from torch import nn

from qdqforge.front.export.scopes import ScopeIndex, dynamo_module
from qdqforge.graph import meta

_SHAPE_ONLY = {"Shape", "Size"}


def annotate_modules(model_proto: onnx.ModelProto, model: nn.Module, exporter: str) -> int:
    """Stamp ``qdqforge.module``/``module_type`` on every node whose module is known.

    The module is the one whose ``forward`` ran the op, as the exporter recorded it. A weight
    used functionally keeps the caller: ``nn.MultiheadAttention`` runs ``out_proj.weight``
    through ``F.multi_head_attention_forward``, so that Gemm belongs to ``self_attn``.

    Returns:
        How many nodes were annotated.
    """
    modules = dict(model.named_modules(remove_duplicate=False))  # aliases: either name
    resolve = _resolver(set(modules), exporter)
    annotated = 0
    for node in model_proto.graph.node:
        name = resolve(node)
        if name is None:
            continue
        _set_meta(node, meta.MODULE, name)
        _set_meta(node, meta.MODULE_TYPE, type(modules[name]).__name__)
        annotated += 1
    return annotated


def _resolver(modules: set[str], exporter: str) -> Callable[[onnx.NodeProto], str | None]:
    """node -> module name, from dynamo's node metadata or TorchScript's scope names."""
    if exporter == "torchscript":
        index = ScopeIndex(modules)
        return lambda node: index.resolve(node.name, _owners(node, modules))
    return lambda node: dynamo_module({p.key: p.value for p in node.metadata_props}, modules)


def _owners(node: onnx.NodeProto, modules: set[str]) -> list[str]:
    """Modules whose parameters ``node`` reads (initializers keep their torch names)."""
    return [name.rpartition(".")[0] for name in node.input if name.rpartition(".")[0] in modules]


def _set_meta(node: onnx.NodeProto, key: str, value: str) -> None:
    for prop in node.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    node.metadata_props.add(key=key, value=value)


def module_map(model_proto: onnx.ModelProto) -> dict[str, str]:
    """``{node name: qualified module name}`` for every annotated node, in graph order."""
    result = {}
    for node in model_proto.graph.node:
        for prop in node.metadata_props:
            if prop.key == meta.MODULE:
                result[node.name] = prop.value
    return result


def layer_nodes(model_proto: onnx.ModelProto) -> dict[str, list[str]]:
    """``{qualified module name: [node names in graph order]}``."""
    result: dict[str, list[str]] = defaultdict(list)
    for node_name, module in module_map(model_proto).items():
        result[module].append(node_name)
    return dict(result)


def shared_modules(model_proto: onnx.ModelProto) -> list[str]:
    """Modules called more than once (weight sharing), sorted.

    A module counts as called twice when one of its own parameters (an initializer named
    ``<module>.<param>``) is read by more than one node annotated with that module; one call reads
    each of its weights once (directly or through a single Transpose/Split). Shape-only readers
    (dynamo builds a zero conv bias from ``Shape(weight)``) do not count.
    """
    owners = module_map(model_proto)
    initializers = {t.name for t in model_proto.graph.initializer}
    reads: Counter[tuple[str, str]] = Counter()
    for node in model_proto.graph.node:
        module = owners.get(node.name)
        if not module or node.op_type in _SHAPE_ONLY:
            continue
        for name in set(node.input) & initializers:
            if name.rpartition(".")[0] == module:
                reads[module, name] += 1
    return sorted({module for (module, _), count in reads.items() if count > 1})
