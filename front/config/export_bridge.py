"""Get the ONNX graph the layer finder reads, from the project exporter when it is present.

The project exporter is ``qdqforge.front.export.export`` (it stamps ``qdqforge.module`` and
``qdqforge.module_type`` on every node). Until it exists this module falls back to
``torch.onnx.export(dynamo=True, optimize=False)`` and derives the same metadata from the
exporter's ``pkg.torch.onnx.name_scopes``/``class_hierarchy`` node metadata.
"""

from __future__ import annotations

import ast
import copy
import logging

import onnx
import torch

from qdqforge.errors import ExportError

log = logging.getLogger(__name__)


def normalize_inputs(input_data) -> tuple:
    """AMCT ``input_data`` as a tuple (project normalizer when present)."""
    try:
        from qdqforge.front.inputs import normalize_input_data
    except ImportError:
        return (input_data,) if isinstance(input_data, torch.Tensor) else tuple(input_data)
    return tuple(normalize_input_data(input_data))


def export_for_layers(model: torch.nn.Module, input_data) -> onnx.ModelProto:
    """Export ``model`` to a ModelProto whose nodes carry ``qdqforge.module`` metadata."""
    args = normalize_inputs(input_data)
    try:
        from qdqforge.front.export import export
    except ImportError:
        return _fallback_export(model, args)
    return export(model, args)


def modules_called_twice(proto: onnx.ModelProto) -> set[str]:
    """Modules the project's ``module_names.shared_modules`` report (empty without it)."""
    try:
        from qdqforge.front.module_names import shared_modules
    except ImportError:
        return set()
    return set(shared_modules(proto))


def _fallback_export(model: torch.nn.Module, args: tuple) -> onnx.ModelProto:
    log.debug("qdqforge.front.export not available; using the torch.onnx fallback")
    clone = copy.deepcopy(model).eval()
    try:
        with torch.no_grad():
            program = torch.onnx.export(clone, args, dynamo=True, optimize=False, verbose=False)
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {e}") from e
    proto = program.model_proto
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = _literal(meta.get("pkg.torch.onnx.name_scopes"))
        classes = _literal(meta.get("pkg.torch.onnx.class_hierarchy"))
        if len(scopes) >= 2:
            node.metadata_props.add(key="qdqforge.module", value=scopes[-2])
        if len(classes) >= 2:
            node.metadata_props.add(
                key="qdqforge.module_type", value=classes[-2].rsplit(".", 1)[-1]
            )
    return proto


def _literal(text: str | None) -> list[str]:
    try:
        value = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):
        return []
    return value if isinstance(value, list) else []
