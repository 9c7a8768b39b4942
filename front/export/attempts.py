"""Which exporter runs, on which copy of the model, in which module modes.

The copy is put in "train, normalization eval" mode: plain ``nn.Dropout`` is exported as a
Dropout node (the reimported module must train with it) while BatchNorm (and InstanceNorm with
running stats) use their running statistics. Dropout1d/2d/3d, AlphaDropout and
FeatureAlphaDropout are put in eval: in training mode dynamo turns them into random ops
(``RandomUniformLike``) and TorchScript refuses them, so they export as identity and the
reimported module does not apply them.

``mode="eval"``: everything eval, no Dropout nodes. It is chosen up front when the copy's
training-mode forward computes something else than ``model.eval()`` beyond dropout
(:mod:`qdqforge.front.export.train_branches`: one eager forward instead of a wasted export), when
every exporter fails in training mode (a train-only code path the exporters refuse, e.g. Wav2Vec2's
SpecAugment mask sampling, a data-dependent guard for dynamo and a value-dependent branch for
TorchScript), and when the training-mode graph does not compute what ``model.eval()`` does
(:mod:`qdqforge.front.export.check`). Each is logged as a WARNING: the reimported module then does
not apply dropout in ``train()``.
"""

from __future__ import annotations

import copy
import logging

import onnx
import torch
from torch import nn

from qdqforge.errors import ExportError
from qdqforge.front.export import exporters
from qdqforge.front.export.failures import describe_error as describe
from qdqforge.front.export.failures import is_data_dependent
from qdqforge.front.export.train_branches import EvalResult, training_difference

log = logging.getLogger(__name__)

_NORMALIZATION = nn.modules.batchnorm._NormBase


def export_copy(model: nn.Module, mode: str = "train") -> nn.Module:
    """A deep copy in export mode (``"train"``: see the module docstring; ``"eval"``).

    The copy shares ``model``'s parameters (the same ``nn.Parameter`` objects): the exporters
    and the eager check only read them, and a deep copy would hold the weights twice (the
    exporters' caches may keep the copy alive after the export). Buffers are copied: a forward
    in training mode may update them.
    """
    memo = {id(p): p for _, p in model.named_parameters(remove_duplicate=False)}
    try:
        work = copy.deepcopy(model, memo)
    except Exception as e:
        raise ExportError(f"cannot deep-copy {type(model).__qualname__} for export: {e}") from e
    work.train(mode == "train")
    for module in work.modules():
        if _exported_in_eval(module):
            module.eval()
    return work


def _exported_in_eval(module: nn.Module) -> bool:
    if isinstance(module, _NORMALIZATION):
        return module.track_running_stats
    return isinstance(module, nn.modules.dropout._DropoutNd) and type(module) is not nn.Dropout


def plan(exporter: str, opset: int | None) -> list[str]:
    """Exporters to try in order; ``auto`` with an opset below dynamo's minimum skips dynamo."""
    minimum = exporters.DYNAMO_MIN_OPSET
    low = opset is not None and opset < minimum
    if exporter == "auto":
        if low:
            log.info("opset %d < %d: using the TorchScript exporter", opset, minimum)
        return ["torchscript"] if low else ["dynamo", "torchscript"]
    if exporter == "dynamo" and low:
        log.warning("dynamo emits opset >= %d; opset %d raised to %d", minimum, opset, minimum)
    return [exporter]


def run_exporters(
    model: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    reference: EvalResult | None = None,
    **options,
) -> tuple[onnx.ModelProto, str, nn.Module]:
    """Try ``names`` in order, each on a fresh copy; returns (graph, exporter, exported copy).

    ``mode`` (option): ``"train"``, ``"eval"`` or None (the default: ``"train"`` unless the model
    branches on ``self.training`` beyond dropout). When every exporter fails in training mode,
    they are tried again in eval mode. The exported copy's ``training`` flag tells the mode used.
    ``reference``: ``model.eval()``'s result, shared with the caller's export check.

    Raises:
        ExportError: every exporter failed; names the model class and each exporter's error,
            chained to the first (preferred) exporter's error.
    """
    mode = options.pop("mode", None) or _choose_mode(model, args, reference)
    try:
        return _run_in_mode(model, args, names, mode, **options)
    except ExportError as e:
        if mode == "eval":
            raise
        log.warning("%s; exporting again in eval mode, without Dropout nodes", e)
        try:
            return _run_in_mode(model, args, names, "eval", **options)
        except ExportError as again:
            cause = again.__cause__ or again  # the preferred exporter's own error, as above
            raise ExportError(f"{again} (in training mode too: {e})") from cause


def _choose_mode(model: nn.Module, args: tuple, reference: EvalResult | None) -> str:
    why = training_difference(export_copy(model), args, reference)
    if why is None:
        return "train"
    log.warning(
        "%s branches on self.training beyond dropout (%s): exporting in eval mode, without "
        "Dropout nodes", type(model).__qualname__, why,
    )  # fmt: skip
    return "eval"


def _run_in_mode(model: nn.Module, args: tuple, names: list[str], mode: str, **options):
    failures: list[tuple[str, Exception]] = []
    for name in names:
        work = export_copy(model, mode)  # a failed attempt may leave its copy half-traced
        try:
            return _export_with(name, work, args, failures, **options), name, work
        except Exception as e:
            failures.append((name, e))
            if name != names[-1]:
                log.warning("dynamo export failed, falling back to TorchScript: %s", describe(e))
    tried = "; ".join(f"{name} exporter: {describe(e)}" for name, e in failures)
    first = failures[0][1]  # the preferred exporter's error; the message names all
    raise ExportError(f"cannot export {type(model).__qualname__} to ONNX ({tried})") from first


def _export_with(name: str, work: nn.Module, args: tuple, failures: list, **options):
    if name == "dynamo":
        opset = options["opset"]
        options["opset"] = None if opset is None else max(opset, exporters.DYNAMO_MIN_OPSET)
        return exporters.export_dynamo(work, args, **options)
    # dynamo saw value-dependent control flow: trust no bool conversion in the trace
    strict = any(is_data_dependent(e) for _, e in failures)
    return exporters.export_torchscript(work, args, strict=strict, **options)
