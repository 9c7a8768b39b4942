"""``qdqforge.export``: torch model -> ONNX ModelProto that keeps what training needs.

The export works on a deep copy put in "train, BN eval" mode (:mod:`.attempts`):
Dropout is exported as Dropout nodes (so the reimported model can train with dropout) while
BatchNormalization uses its running stats (``training_mode=0``). The Dropout nodes then get
inference semantics (:mod:`.fixups`) and onnxruntime checks the graph against
``model.eval()`` (:mod:`.check`). A module that branches on ``self.training``
in some other way is exported fully in eval mode (no Dropout nodes) with a WARNING: found before
exporting by one eager forward (:mod:`.train_branches`), or after a training-mode
export that every exporter refused or whose graph differs. A graph that still differs is an
ExportError.

Exporter choice (``exporter=``): ``"dynamo"``, ``"torchscript"`` or ``"auto"`` (dynamo, then
TorchScript with a WARNING naming the dynamo error). dynamo cannot emit opset < 18: an explicit
``"dynamo"`` with ``opset=17`` logs a warning and uses 18, ``"auto"`` goes straight to TorchScript.

Exports are serialized process-wide (:data:`EXPORT_LOCK`): torch's exporters patch global state
(dynamo's patcher, the RNG that ``fork_rng`` saves and restores, ``sys.stderr`` and the warning
filters that :mod:`.quiet` captures), so two threads exporting at once made dynamo
fail ("CURRENT_PATCHER is None") and fall back to TorchScript: another graph. Everything after
the export (passes, reimport, calibration) runs concurrently.

An unchanged model exported again with the same input signature and options is not exported
again: :mod:`.cache` returns a copy of the earlier graph.
"""

from __future__ import annotations

import logging
import os
import threading

import onnx
import torch
from torch import nn

from qdqforge.errors import ExportError
from qdqforge.front.entry.inputs import normalize_input_data
from qdqforge.front.export import attempts, exporters, fingerprint, fixups
from qdqforge.front.export import check as verify
from qdqforge.front.export.cache import CACHE
from qdqforge.front.export.cache_weights import Weightless, held_weights, weightless
from qdqforge.front.export.embedding_padding import mark_padding_rows
from qdqforge.front.export.module_names import annotate_modules
from qdqforge.front.export.tied_weights import tie_aliases
from qdqforge.front.export.train_branches import EvalResult
from qdqforge.front.export.weights import add_unused_weights, mark_frozen, weight_names
from qdqforge.graph import io as graph_io
from qdqforge.graph import meta
from qdqforge.graph.detached import reap_dropped
from qdqforge.graph.held_arrays import Held, filled

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
EXPORT_LOCK = threading.RLock()


def export(
    model: nn.Module,
    input_data: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | os.PathLike | None = None,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    exporter: str = "auto",
    check: bool = True,
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
        check: compare the graph with ``model.eval()`` in onnxruntime on ``input_data``.

    Returns:
        The exported model.

    Raises:
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ExportError: ``model`` is not an ``nn.Module``, ``exporter`` is unknown, every exporter
            tried failed, or the graph does not compute ``model.eval()``; the message names the
            model class, the exporters and their errors, and the error is chained.
    """
    exported = export_held(
        model, input_data, opset=opset, dynamic_batch=dynamic_batch, exporter=exporter, check=check
    )
    proto = filled(exported) if exported.arrays else exported.model
    if path is not None:
        graph_io.save(proto, path)
        log.info("saved ONNX model to %s", os.fspath(path))
    return proto


def export_held(
    model: nn.Module,
    input_data: torch.Tensor | tuple[torch.Tensor, ...],
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    exporter: str = "auto",
    check: bool = True,
) -> Held:
    """:func:`export` for a flow: the graph is ``held.model``, its large initializers that are
    the model's tensors held as arrays (read-only views of those tensors:
    :mod:`.cache_weights`) instead of bytes in the proto, whether the cache had the graph or
    not; ``io.from_proto`` gives them to the graph's constants. Keep the :class:`Held` while
    ``held.model`` is used, and the model's tensors unchanged. Arguments and errors as
    :func:`export`."""
    args = normalize_input_data(input_data)
    _check_arguments(model, exporter)
    reap_dropped(fingerprint.weight_bytes(model))  # an earlier stage's graphs, before the proto
    options = {"opset": opset, "dynamic_batch": dynamic_batch}
    with EXPORT_LOCK, torch.random.fork_rng(devices=[]):  # dropout runs: keep the user's RNG
        key = CACHE.key(model, args, {**options, "exporter": exporter, "check": check})
        held = CACHE.get(key, args, model)
        if held is None:
            names = attempts.plan(exporter, opset)
            stored, held, used = _export_checked(model, args, names, check, options)
            CACHE.put(key, stored, used, args)
    return held


def _check_arguments(model: object, exporter: str) -> None:
    if not isinstance(model, nn.Module):
        raise ExportError(f"model must be a torch.nn.Module; received {type(model).__qualname__}")
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {list(EXPORTERS)}; received {exporter!r}")


def _export_checked(
    model: nn.Module, args: tuple, names: list[str], check: bool, options: dict
) -> tuple[Weightless, Held, str]:
    """Export in training mode; if that graph is not ``model.eval()``, export again in eval.
    One eager eval forward serves the training-mode check and the export check. Returns the
    graph without the model's tensors (for the cache), the graph holding views of them, and
    the exporter used."""
    reference = EvalResult(args)
    proto, used, work = attempts.run_exporters(model, args, names, reference=reference, **options)
    in_train = work.training  # eval when the model branches on self.training beyond dropout
    stored, held = _held(proto, used, model)
    del proto  # its copy of the weights: the graph holds views of the model's tensors
    error = verify.eval_error(held.model, work, args, reference) if check else 0.0
    if not error > verify.TOLERANCE or not in_train:  # NaN: ORT could not run it, no check
        return _checked(stored, held, used, error, model)
    log.warning(
        "%s exported in training mode differs from model.eval() by %.3g (relative): a module "
        "branches on self.training; exporting again in eval mode, without Dropout nodes",
        type(model).__qualname__, error,
    )  # fmt: skip
    del stored, held
    again = {**options, "mode": "eval"}
    proto, used, work = attempts.run_exporters(model, args, [used], reference=reference, **again)
    stored, held = _held(proto, used, model)
    del proto
    error = verify.eval_error(held.model, work, args, reference)
    return _checked(stored, held, used, error, model)


def _held(proto: onnx.ModelProto, used: str, model: nn.Module) -> tuple[Weightless, Held]:
    """The exported ``proto`` fixed and annotated, then without the model's tensors (stubs)
    and with read-only views of them (:mod:`.cache_weights`)."""
    _fix(proto, used)
    _annotate(proto, model, used)
    stored = weightless(proto, model)
    held = held_weights(stored, model)
    if held is None:  # weightless made each stub from a tensor of this very model
        raise ExportError(f"the export of {type(model).__qualname__} lost a weight's data")
    return stored, held


def _checked(stored: Weightless, held: Held, used: str, error: float, model: nn.Module):
    if error > verify.TOLERANCE:
        raise ExportError(
            f"the {used} exporter's graph of {type(model).__qualname__} differs from "
            f"model.eval() by {error:.3g} (relative) in onnxruntime on input_data"
        )
    return stored, held, used


def _fix(proto: onnx.ModelProto, used: str) -> None:
    """Stable output and node names; Dropout with inference semantics."""
    if used == "dynamo":
        fixups.rename_outputs(proto, exporters.io_names("output", len(proto.graph.output)))
    dropouts = fixups.dropout_to_inference(proto)
    fixups.uniquify_node_names(proto)
    log.debug("%d Dropout nodes given inference semantics", dropouts)


def _annotate(proto: onnx.ModelProto, model: nn.Module, used: str) -> None:
    """Module names on nodes, torch weight names on the model (names only are read)."""
    annotated = annotate_modules(proto, model, used)
    tie_aliases(proto, model)
    mark_padding_rows(proto, model)
    add_unused_weights(proto, model)
    parameters, buffers = weight_names(model, {t.name for t in proto.graph.initializer})
    proto.metadata_props.add(key=meta.PARAMETERS, value=meta.dump_names(parameters))
    proto.metadata_props.add(key=meta.BUFFERS, value=meta.dump_names(buffers))
    mark_frozen(proto, model, parameters)
    nodes, name = len(proto.graph.node), type(model).__qualname__
    log.info("exported %s with %s: %d nodes, %d annotated", name, used, nodes, annotated)
