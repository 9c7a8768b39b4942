"""``qdqforge.export``: torch model -> ONNX ModelProto that keeps what training needs.

The export works on a deep copy put in "train, BN eval" mode: Dropout is exported as Dropout
nodes (so the reimported module can train with dropout) while BatchNormalization uses its running
stats (``training_mode=0``). The Dropout nodes then get inference semantics (see
:mod:`qdqforge.front.fixups`), so onnxruntime on the result equals ``model.eval()``. Trap: a
module whose ``forward`` branches on ``self.training`` other than through dropout is exported with
its training branch.

Exporter choice (``exporter=``): ``"dynamo"``, ``"torchscript"`` or ``"auto"`` (dynamo, then
TorchScript with a WARNING naming the dynamo error). dynamo cannot emit opset < 18: an explicit
``"dynamo"`` with ``opset=17`` logs a warning and uses 18, ``"auto"`` goes straight to TorchScript.
"""

from __future__ import annotations

import copy
import logging
import os

import onnx
import torch
from torch import nn

from qdqforge.errors import ExportError
from qdqforge.front import exporters, fixups
from qdqforge.front.failures import describe_error as describe
from qdqforge.front.failures import is_data_dependent
from qdqforge.front.inputs import normalize_input_data
from qdqforge.front.module_names import annotate_modules
from qdqforge.front.weights import weight_names
from qdqforge.graph import io as graph_io
from qdqforge.graph import meta

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")


def export(
    model: nn.Module,
    input_data: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | os.PathLike | None = None,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    exporter: str = "auto",
) -> onnx.ModelProto:
    """Export ``model`` to ONNX without touching it.

    Graph inputs are named ``input`` (one tensor) or ``input_0..N``; outputs ``output`` or
    ``output_0..N``. Initializers keep the torch parameter/buffer names, BatchNormalization and
    Dropout survive, and every node that comes from a module carries node metadata
    ``qdqforge.module`` / ``qdqforge.module_type``.

    Args:
        model: the torch module; it is deep-copied, never modified.
        input_data: a tensor or a tuple of tensors, the positional inputs of ``model``.
        path: if given, the model is also written there atomically.
        opset: ONNX opset; default is the exporter's (20 for dynamo, 17 for TorchScript).
        dynamic_batch: make dim 0 of every input (and output) symbolic (``batch``).
        exporter: ``"auto"`` (dynamo, falling back to TorchScript), ``"dynamo"`` or
            ``"torchscript"``.

    Returns:
        The exported model.

    Raises:
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ExportError: ``model`` is not an ``nn.Module``, ``exporter`` is unknown, or every
            exporter tried failed; the message names the model class, the exporters and their
            errors, and the error is chained.
    """
    args = normalize_input_data(input_data)
    _check_arguments(model, exporter)
    with torch.random.fork_rng(devices=[]):  # tracing runs dropout: keep the user's RNG stream
        proto, used = _run_exporters(model, args, _plan(exporter, opset), opset, dynamic_batch)
    _finish(proto, model, used)
    if path is not None:
        graph_io.save(proto, path)
        log.info("saved ONNX model to %s", os.fspath(path))
    return proto


def _check_arguments(model: object, exporter: str) -> None:
    if not isinstance(model, nn.Module):
        raise ExportError(f"model must be a torch.nn.Module; received {type(model).__qualname__}")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {list(EXPORTERS)}; received {exporter!r}")


def _export_copy(model: nn.Module) -> nn.Module:
    """A deep copy in export mode: everything ``train()``, normalization with running stats
    ``eval()`` (BN is exported with its running statistics, never updates them)."""
    try:
        work = copy.deepcopy(model)
    except Exception as e:
        raise ExportError(f"cannot deep-copy {type(model).__qualname__} for export: {e}") from e
    work.train()
    for module in work.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.eval()
    return work


def _plan(exporter: str, opset: int | None) -> list[str]:
    minimum = exporters.DYNAMO_MIN_OPSET
    low = opset is not None and opset < minimum
    if exporter == "auto":
        if low:
            log.info("opset %d < %d: using the TorchScript exporter", opset, minimum)
        return ["torchscript"] if low else ["dynamo", "torchscript"]
    if exporter == "dynamo" and low:
        log.warning(
            "the dynamo exporter emits opset >= %d; opset %d raised to %d", minimum, opset, minimum
        )
    return [exporter]


def _run_exporters(
    model: nn.Module, args: tuple, plan: list[str], opset: int | None, dynamic_batch: bool
) -> tuple[onnx.ModelProto, str]:
    """Try the planned exporters in order, each on a fresh copy; the first success wins."""
    failures: list[tuple[str, Exception]] = []
    for name in plan:
        run = exporters.export_dynamo if name == "dynamo" else exporters.export_torchscript
        if name == "dynamo" and opset is not None:
            opset = max(opset, exporters.DYNAMO_MIN_OPSET)
        work = _export_copy(model)  # a failed attempt may leave its copy half-traced
        options = {"opset": opset, "dynamic_batch": dynamic_batch}
        if name == "torchscript":  # dynamo saw value-dependent control flow: trust no bool
            options["strict"] = any(is_data_dependent(e) for _, e in failures)
        try:
            return run(work, args, **options), name
        except Exception as e:
            failures.append((name, e))
            if name != plan[-1]:
                log.warning("dynamo export failed, falling back to TorchScript: %s", describe(e))
    tried = "; ".join(f"{name} exporter: {describe(e)}" for name, e in failures)
    first_error = failures[0][1]  # the preferred exporter's error; the message names all
    raise ExportError(
        f"cannot export {type(model).__qualname__} to ONNX ({tried})"
    ) from first_error


def _finish(proto: onnx.ModelProto, model: nn.Module, used: str) -> None:
    """Dropout to inference, stable I/O and node names, module and weight-name metadata.

    Only names are read from ``model`` (the copy has the same module and parameter names).
    """
    if used == "dynamo":
        fixups.rename_outputs(proto, exporters.io_names("output", len(proto.graph.output)))
    dropouts = fixups.dropout_to_inference(proto)
    fixups.uniquify_node_names(proto)
    annotated = annotate_modules(proto, model, used)
    parameters, buffers = weight_names(model, {t.name for t in proto.graph.initializer})
    proto.metadata_props.add(key=meta.PARAMETERS, value=meta.dump_names(parameters))
    proto.metadata_props.add(key=meta.BUFFERS, value=meta.dump_names(buffers))
    nodes, name = len(proto.graph.node), type(model).__qualname__
    log.info("exported %s with %s: %d nodes, %d annotated", name, used, nodes, annotated)
    log.debug("%d Dropout nodes given inference semantics", dropouts)
