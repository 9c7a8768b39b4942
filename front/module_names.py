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

from qdqforge.front.scopes import ScopeIndex, dynamo_module
from qdqforge.graph import meta

_SHAPE_ONLY = {"Shape", "Size"}
_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def annotate_modules(model_proto: onnx.ModelProto, model: nn.Module, exporter: str) -> int:
    """Stamp ``qdqforge.module``/``module_type`` on every node whose module is known.

    Returns:
        How many nodes were annotated.
    """
    modules = dict(model.named_modules())
    resolve = _resolver(set(modules), exporter)
    owners = {node.name: resolve(node) for node in model_proto.graph.node}
    _credit_weight_owners(model_proto, owners, set(modules))
    annotated = 0
    for node in model_proto.graph.node:
        name = owners[node.name]
        if name is None:
            continue
        _set_meta(node, meta.MODULE, name)
        _set_meta(node, meta.MODULE_TYPE, type(modules[name]).__name__)
        annotated += 1
    return annotated


def _credit_weight_owners(
    model_proto: onnx.ModelProto, owners: dict[str, str | None], modules: set[str]
) -> None:
    """Give a weighted op (and its weight Transpose) to the submodule that owns the weight.

    ``nn.MultiheadAttention`` runs ``out_proj`` functionally, so the exporters scope its Gemm to
    ``self_attn``; configs key the layer as ``self_attn.out_proj``. Only descendants of the
    scope are credited: a tied weight read by another module (``lm_head`` using ``embed.weight``)
    stays with the caller.
    """
    producers = {out: node for node in model_proto.graph.node for out in node.output}
    for node in model_proto.graph.node:
        if node.op_type not in _WEIGHTED or len(node.input) < 2:
            continue
        weight, chain = _weight_chain(node, producers)
        owner, _, leaf = weight.rpartition(".")
        if leaf == "weight" and owner in modules and _below(owner, owners.get(node.name)):
            owners.update(dict.fromkeys((n.name for n in chain), owner))


def _weight_chain(node: onnx.NodeProto, producers: dict) -> tuple[str, list[onnx.NodeProto]]:
    """The tensor read as weight (through one Transpose: Linear on 3-D input) and the nodes."""
    weight = node.input[1]
    producer = producers.get(weight)
    if producer is not None and producer.op_type == "Transpose":
        return producer.input[0], [node, producer]
    return weight, [node]


def _below(owner: str, scope: str | None) -> bool:
    """``owner`` is a strict descendant of ``scope`` (``""`` is the root)."""
    return scope is not None and owner != scope and (not scope or owner.startswith(scope + "."))


def _resolver(modules: set[str], exporter: str) -> Callable[[onnx.NodeProto], str | None]:
    """node -> module name, from dynamo's node metadata or TorchScript's scope names."""
    if exporter == "torchscript":
        index = ScopeIndex(modules)
        return lambda node: index.resolve(node.name)
    return lambda node: dynamo_module({p.key: p.value for p in node.metadata_props}, modules)


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
