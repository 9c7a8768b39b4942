"""Which torch parameters and persistent buffers an exported graph holds as initializers.

The exporters keep torch names (``conv1.weight``, ``bn1.running_mean``) when their optimizers are
off; these lists go to the model metadata ``qdqforge.parameters`` / ``qdqforge.buffers`` so later
stages know which initializers are trainable parameters and which are state.
"""

from __future__ import annotations

import logging

import onnx
from torch import nn

from qdqforge.graph import meta

log = logging.getLogger(__name__)


def weight_names(model: nn.Module, initializers: set[str]) -> tuple[list[str], list[str]]:
    """(parameter names, persistent buffer names) of ``model`` that are graph initializers.

    Tied weights have several names (``a.weight`` is ``b.weight``); the exporter keeps one of
    them, not necessarily the first, so every alias is looked up.
    """
    named = model.named_parameters(remove_duplicate=False)
    parameters = [name for name, _ in named if name in initializers]
    buffers = []
    for prefix, module in model.named_modules(remove_duplicate=False):
        for name, value in module._buffers.items():
            full = f"{prefix}.{name}" if prefix else name
            persistent = name not in module._non_persistent_buffers_set
            if value is not None and persistent and full in initializers:
                buffers.append(full)
    return parameters, buffers


def add_unused_weights(proto: onnx.ModelProto, model: nn.Module) -> list[str]:
    """Add the parameters and persistent buffers the graph never reads as unused initializers,
    then order initializers like ``model.state_dict()``.

    The exporters drop weights no node reads (e.g. BERT's pooler when only the hidden states are
    returned); without them ``reimported.load_state_dict(model.state_dict())`` could not be strict.
    A tied alias of an exported tensor is not added again (the runtime keeps one tensor).
    """
    present = {t.name for t in proto.graph.initializer}
    exported_ids = {id(t) for name, t in _named_tensors(model) if name in present}
    state = model.state_dict(keep_vars=True)
    added = []
    for name, tensor in state.items():
        if name in present or id(tensor) in exported_ids or not tensor.is_floating_point():
            continue
        array = tensor.detach().cpu()
        proto.graph.initializer.append(onnx.numpy_helper.from_array(array.numpy(), name))
        exported_ids.add(id(tensor))
        added.append(name)
    _order_like(proto, list(state))
    if added:
        log.debug("added %d unused weights as initializers: %s", len(added), added[:5])
    return added


def _named_tensors(model: nn.Module):
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def mark_frozen(proto: onnx.ModelProto, model: nn.Module, parameters: list[str]) -> list[str]:
    """Record the exported parameters with ``requires_grad=False`` (model metadata
    :data:`qdqforge.graph.meta.FROZEN`): the reimported module keeps them frozen (Whisper's
    sinusoidal position table is a frozen ``nn.Embedding``)."""
    named = dict(model.named_parameters(remove_duplicate=False))
    frozen = [name for name in parameters if not named[name].requires_grad]
    if frozen:
        proto.metadata_props.add(key=meta.FROZEN, value=meta.dump_names(frozen))
    return frozen


def _order_like(proto: onnx.ModelProto, names: list[str]) -> None:
    """Order initializers like ``names`` (others last, stable).

    Re-adding the initializers copies every tensor into the proto (protobuf frees the old ones
    only with the whole message): a > 2 GB model would hold its weights twice. Exporters
    usually emit them in ``state_dict`` order already; then nothing is moved.
    """
    order = {name: i for i, name in enumerate(names)}
    keys = [order.get(t.name, len(order)) for t in proto.graph.initializer]
    if keys == sorted(keys):
        return
    ordered = sorted(proto.graph.initializer, key=lambda t: order.get(t.name, len(order)))
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(ordered)
