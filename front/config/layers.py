"""Find the quantizable layers of a torch model, confirmed in its exported ONNX graph.

A layer is a module of a quantizable type (docs/amct.md §4.7) that the exported graph
actually runs: its qualified name appears as ``qdqforge.module`` metadata on a node of the
expected op (Conv, ConvTranspose, Gemm/MatMul, AveragePool). Modules the graph never runs (e.g.
``nn.MultiheadAttention.out_proj``, whose weight is used functionally) are left out, and one
warning names every such layer and why. Module names may hold any character (``"``, ``/``,
``@1``): they are matched exactly, never split or stripped.

Weight sharing is reported, never quantized twice: a module whose op appears more than once
(called more than once) and modules holding the same weight tensor get ``sharing`` set, are
logged as a warning and are written disabled. AMCT does not support such layers either.

MatMul between two activations (attention scores, ``attn @ v``) goes beyond AMCT: each is a
layer named ``"<module>.matmul_<k>"`` (``k`` counts such MatMuls of that module in graph order;
``"matmul_<k>"`` at top level), type ``"MatMul"``, disabled unless a ``.cfg`` asks for it.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import onnx
from torch import nn

from qdqforge.front.config.layer_types import MATMUL, PTQ_TYPES, QuantLayer
from qdqforge.front.export.module_names import shared_modules
from qdqforge.front.export.to_onnx import export

log = logging.getLogger(__name__)

MODULE_KEY = "qdqforge.module"
OPS = {
    "Linear": ("Gemm", "MatMul"),
    "AvgPool2d": ("AveragePool",),
    **{t: ("Conv",) for t in ("Conv1d", "Conv2d", "Conv3d")},
    **{t: ("ConvTranspose",) for t in ("ConvTranspose1d", "ConvTranspose2d")},
}
# Layers of other libraries that compute what a torch type does, by (module, class name), so
# that no library is imported to recognise them. transformers' Conv1D (GPT-2, GPT-J's MLP...)
# is ``addmm(b, x, W)``, a Linear whose weight is stored ``[in, out]``: its Gemm/MatMul reads W
# directly and the passes see the ``MatMul`` weight layout (output channels on axis 1).
EQUIVALENT_TYPES = {("transformers.pytorch_utils", "Conv1D"): "Linear"}


def find_quant_layers(model: nn.Module, input_data) -> list[QuantLayer]:
    """Export ``model`` and list its quantizable layers in graph order.

    Args:
        model: the float torch model (not modified).
        input_data: example input, a tensor or a tuple of tensors (AMCT ``input_data``).

    Returns:
        One QuantLayer per quantizable layer, weight-shared ones with ``sharing`` set.

    Raises:
        ExportError: the model cannot be exported.
    """
    return quant_layers_from_graph(model, export(model, input_data))


def quant_layers_from_graph(model: nn.Module, proto: onnx.ModelProto) -> list[QuantLayer]:
    """Quantizable layers of ``model`` given its exported graph (see :func:`find_quant_layers`)."""
    order = {node.name: index for index, node in enumerate(proto.graph.node)}
    groups = nodes_by_module(proto)
    shared = _shared_weights(model)
    twice = set(shared_modules(proto))
    found: list[tuple[int, QuantLayer]] = []
    left_out: list[str] = []
    for name, kind in candidate_modules(model).items():
        ops = [n for n in groups.get(name, []) if n.op_type in OPS[kind]]
        if not ops:
            left_out.append(f"{name!r} ({kind}: {_why_left_out(model, name, proto)})")
            continue
        sharing = shared.get(name) or _called_twice(name, len(ops), twice)
        nodes = tuple(n.name for n in groups[name])
        found.append((order[ops[0].name], QuantLayer(name, kind, nodes, sharing)))
    found += _activation_matmuls(proto, {layer.name for _, layer in found}, order)
    layers = [layer for _, layer in sorted(found, key=lambda item: item[0])]
    _warn_shared(layers)
    if left_out:
        log.warning(
            "quantizable layer(s) left out of the config, they stay float: %s", "; ".join(left_out)
        )
    return layers


def _why_left_out(model: nn.Module, name: str, proto: onnx.ModelProto) -> str:
    """Why no node of ``proto`` is attributed to module ``name``: its weight is read elsewhere
    (a functional call such as MultiheadAttention's out_proj), or never (not called)."""
    weight = f"{name}.weight"
    readers = [n for n in proto.graph.node if weight in n.input]
    if not readers:
        return "forward never calls it in the exported graph"
    owners = sorted({_module_of(n) or "<top level>" for n in readers})
    return f"its weight is read by nodes of {', '.join(map(repr, owners))}, not by the module"


def _called_twice(name: str, calls: int, reported: set[str]) -> str | None:
    if calls > 1:
        return f"called {calls} times"
    return "called more than once" if name in reported else None


def candidate_modules(model: nn.Module) -> dict[str, str]:
    """``{qualified name: quantizable type}``; subclasses map to their torch base type, and the
    :data:`EQUIVALENT_TYPES` of other libraries to the torch type they compute."""
    out = {}
    for name, module in model.named_modules():
        kind = _quantizable_type(type(module))
        if kind is not None and name:
            out[name] = kind
    return out


def _quantizable_type(cls: type) -> str | None:
    for c in cls.__mro__:
        if (c.__module__, c.__name__) in EQUIVALENT_TYPES:
            return EQUIVALENT_TYPES[c.__module__, c.__name__]
    kind = next((c.__name__ for c in cls.__mro__ if c.__name__ in OPS), None)
    return kind if kind is not None and _is_torch_type(cls, kind) else None


def _is_torch_type(cls: type, kind: str) -> bool:
    return any(c.__name__ == kind and c.__module__.startswith("torch.nn") for c in cls.__mro__)


def nodes_by_module(proto: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Group graph nodes by their ``qdqforge.module`` metadata (the exact module name: a
    ModuleDict key may end in ``@1`` or ``_1``)."""
    groups: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in proto.graph.node:
        for prop in node.metadata_props:
            if prop.key == MODULE_KEY:
                groups[prop.value].append(node)
    return dict(groups)


def _shared_weights(model: nn.Module) -> dict[str, str]:
    owners: dict[int, list[str]] = defaultdict(list)
    for name in candidate_modules(model):
        weight = getattr(model.get_submodule(name), "weight", None)
        if isinstance(weight, nn.Parameter):
            owners[id(weight)].append(name)
    shared = {}
    for names in owners.values():
        for name in names if len(names) > 1 else ():
            others = ", ".join(n for n in names if n != name)
            shared[name] = f"shares its weight with {others}"
    return shared


def _activation_matmuls(proto: onnx.ModelProto, layer_names: set[str], order: dict[str, int]):
    constant = {init.name for init in proto.graph.initializer}
    counters: dict[str, int] = defaultdict(int)
    found = []
    for node in proto.graph.node:
        if node.op_type == "Constant" or (node.input and all(i in constant for i in node.input)):
            constant.update(node.output)
            continue
        module = _module_of(node)
        if (
            node.op_type != "MatMul"
            or module in layer_names
            or any(i in constant for i in node.input)
        ):
            continue
        name = f"{module}.matmul_{counters[module]}" if module else f"matmul_{counters[module]}"
        counters[module] += 1
        found.append((order[node.name], QuantLayer(name, MATMUL, (node.name,))))
    return found


def _module_of(node: onnx.NodeProto) -> str:
    for prop in node.metadata_props:
        if prop.key == MODULE_KEY:
            return prop.value
    return ""


def _warn_shared(layers: list[QuantLayer]) -> None:
    shared = [f"{layer.name} ({layer.sharing})" for layer in layers if layer.sharing]
    if shared:
        log.warning(
            "weight-shared layers are left unquantized (quant_enable/retrain_enable false): %s",
            "; ".join(shared),
        )


assert set(OPS) | {MATMUL} == set(PTQ_TYPES)
