"""Write the fake-quant, QDQ and deploy ONNX of a calibrated or trained model (docs/amct.md §5).

Shared by PTQ ``save_model`` and QAT ``save_quant_retrain_model``: both hand over a float graph
(BN folded, balance Muls kept) and a ``{layer: LayerRecord}`` with ``scale_d``/``offset_d`` and
``scale_w`` per layer. Three models come out of it:

* ``<save_path>_fake_quant_model.onnx`` (``fake_quant``): the torch module's arithmetic in plain
  float ops: activations ``Div -> Round -> Add -> Clip -> Sub -> Mul`` on their grid, weights
  stored already dequantized, float bias. With no QuantizeLinear/DequantizeLinear in it, no
  runtime fuses it into int8 kernels: a default onnxruntime session computes what the
  calibration or QAT module computed, on any CPU.
* ``<save_path>_qdq_model.onnx`` (``insert_qdq``): standard QDQ, int8 weights and int32 bias
  behind DequantizeLinear, activation QuantizeLinear/DequantizeLinear: the form TensorRT,
  OpenVINO and onnxruntime's QDQ path turn into integer kernels; the deploy model's integers.
* ``<save_path>_deploy_model.onnx`` runs Conv and Linear layers on integers
  (``integer_layers``: QuantizeLinear -> ConvInteger/MatMulInteger with int8 weights -> int32
  bias Add -> Cast -> Mul(s_d * s_w)); other quantized layers (ConvTranspose, AveragePool) keep
  the QDQ form with int8 weights, and so do layers with 16-bit activations (record ``act_type``
  INT16, AMCT's A16W8): ONNX has no ConvInteger/MatMulInteger for int16 inputs, so they run as
  ``DequantizeLinear(int16 x) -> op(DequantizeLinear(int8 W), float bias)``; the log and
  ``_verify.json`` (``deploy_float_layers``) name them. Int16 Q/DQ pairs need opset 21: the QDQ
  and deploy graphs are upgraded first (``opset_upgrade``).

Given ``verify_inputs``, the written models are then checked against the torch model on their
integer grids, with optimizations off and in onnxruntime's default session
(:mod:`qdqforge.front.save.verify`, ``<save_path>_verify.json``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import nn

from qdqforge.errors import OutputError
from qdqforge.front.recipes import calibrated_reference, deploy_model, fake_quant_model, qdq_model
from qdqforge.front.record.file import LayerRecord
from qdqforge.front.save.verify import verify_path, verify_saved_models
from qdqforge.front.save.verify_budget import VerifyBudget
from qdqforge.front.save.verify_report import write_unverified
from qdqforge.gc_pause import gc_paused
from qdqforge.graph.detached import (
    constant_bytes,
    large_constants,
    reap_dropped,
    to_proto_detached,
)
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, layer_site
from qdqforge.graph.numerics import IN_MEMORY_BYTES
from qdqforge.graph.staged import StagedFiles
from qdqforge.passes.grids.act_grid import wide_layers
from qdqforge.passes.grids.weight_grid import clamped_weights
from qdqforge.passes.quantized.integer_layers import integer_capable
from qdqforge.runtime import reimport

log = logging.getLogger(__name__)


class SavedModels(NamedTuple):
    """Paths written by :func:`write_quant_models` (module docstring)."""

    fake_quant: Path
    deploy: Path
    qdq: Path


def output_path(save_path: str | os.PathLike, kind: str) -> Path:
    """``<save_path>_<kind>_model.onnx``; a ``dir/`` save_path means no name prefix."""
    text = os.fspath(save_path)
    if text.endswith(("/", os.sep)):
        return Path(text) / f"{kind}_model.onnx"
    return Path(f"{text}_{kind}_model.onnx")


def saved_outputs(save_path: str | os.PathLike) -> dict[str, Path]:
    """Role -> path of every file a save writes under ``save_path`` (for ``check_roles``)."""
    models = {f"{kind} model": output_path(save_path, kind) for kind in SavedModels._fields}
    return {**models, "verify report": verify_path(save_path)}


def check_save_path(save_path: str | os.PathLike) -> None:
    """An existing directory without a trailing ``/`` is ambiguous: an OutputError says so."""
    text = os.fspath(save_path)
    if Path(text).is_dir() and not text.endswith(("/", os.sep)):
        raise OutputError(
            f"save_path {text!r} is an existing directory: give '{text}/' to write "
            f"{os.path.join(text, 'fake_quant_model.onnx')}, or '{os.path.join(text, 'net')}' "
            "for a name prefix"
        )


def write_quant_models(
    graph: Graph,
    records: dict[str, LayerRecord],
    save_path: str | os.PathLike,
    *,
    verify_inputs=None,
    torch_module: nn.Module | None = None,
    verify: bool | VerifyBudget = True,
) -> SavedModels:
    """Write the fake-quant, QDQ and deploy models of ``records`` over ``graph``, then check them.

    The three files are written as one set (``graph.staged``): all are complete on disk before
    any replaces its old version, and ``<save_path>_verify.json`` says ``unverified`` before the
    first one does, until the check has finished.

    Args:
        graph: float graph (BN folded, balance Muls in place); it is consumed.
        records: per-layer ``scale_d``/``offset_d``/``scale_w`` (layers absent stay float).
        save_path: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).
        verify_inputs: example inputs (tensor or tuple); None skips the check.
        torch_module: the torch side of the check; default (PTQ, whose graph weights are already
            on their grid): the calibration module rebuilt from ``graph`` and ``records``
            (``act_quant``). QAT passes its QAT module (:mod:`qdqforge.front.save.verify_taps`).
        verify: False skips the check; a :class:`VerifyBudget` replaces the default budget.

    Raises:
        VerificationError: the models disagree beyond the budget (the files stay written).
    """
    with gc_paused():  # what the save drops dies young; graphs of REAP_BYTES or more are reaped
        return _write_checked(graph, records, save_path, verify_inputs, torch_module, verify)


def _write_checked(graph, records, save_path, verify_inputs, torch_module, verify) -> SavedModels:
    check_save_path(save_path)
    size = constant_bytes(graph)  # the callers freed what was dropped before (reap_dropped)
    checking = verify is not False and verify_inputs is not None
    if checking and torch_module is None:
        torch_module = calibration_reference(graph, records)
    notes = _deploy_notes(graph, records)
    known = large_constants(graph, IN_MEMORY_BYTES) if checking else {}  # held, not read again
    builders = {  # one model at a time: each is written and dropped before the next is built
        "fake_quant": lambda: _fake_quant(graph.copy(), records),
        "deploy": lambda: _deploy_graph(graph.copy(), records),
        "qdq": lambda: _qdq_graph(graph, records),
    }
    report = verify_path(save_path)
    with StagedFiles() as staged:
        paths = SavedModels(
            **{k: _stage(staged, build, save_path, k, size) for k, build in builders.items()}
        )
        write_unverified(report, "verification has not finished" if checking else _why_not(verify))
        staged.commit()
    log.info("wrote %s, %s and %s", *paths)
    if checking:
        budget = verify if isinstance(verify, VerifyBudget) else None
        verify_saved_models(
            paths,
            verify_inputs,
            save_path,
            torch_module=torch_module,
            budget=budget,
            notes=notes,
            known=known,
        )
    return paths


def _stage(staged: StagedFiles, build, save_path, kind: str, size: int) -> Path:
    """Build one saved model, stage it and free it (a gs graph is a cycle) before the next."""
    path = staged.add_model(build(), output_path(save_path, kind))
    reap_dropped(size)
    return path


def calibration_reference(graph: Graph, records: dict[str, LayerRecord]) -> nn.Module:
    """The PTQ calibration module after calibration, from its modified graph and its record."""
    proto, tensors = to_proto_detached(calibrated_reference(records).run(graph))
    # shares the graph's arrays: the passes building the saved models replace arrays, never
    # write into them (they already share them through graph.copy())
    return reimport(proto, tensors=tensors, read_only=True).eval()  # mapped weights not copied


def _why_not(verify) -> str:
    return "verify=False" if verify is False else "no input_data to verify with"


def _fake_quant(graph: Graph, records: dict[str, LayerRecord]) -> Graph:
    return fake_quant_model(records).run(graph)


def _deploy_notes(graph: Graph, records: dict[str, LayerRecord]) -> dict:
    wide = wide_layers(records)
    if wide:
        log.info(
            "deploy: %d layer(s) with int16 activations run as DequantizeLinear + float op "
            "(no int16 ConvInteger/MatMulInteger in ONNX): %s",
            len(wide),
            ", ".join(wide),
        )
    clamped = _clamped(graph, records)
    for layer, count in clamped.items():
        log.warning(
            "layer '%s': %d weight(s) at -128 steps under a negative BatchNorm gamma fold to "
            "+128, which int8 cannot hold: the QDQ and deploy models clamp them to 127 (the "
            "fake-quant model keeps the trained value)",
            layer,
            count,
        )
    return {"deploy_float_layers": wide, "int8_clamped_weights": clamped}


def _clamped(graph: Graph, records: dict[str, LayerRecord]) -> dict[str, int]:
    """``{layer: weights the int8 grid clamps}`` (``weight_grid.clamped_weights``)."""
    found = {}
    for layer, rec in records.items():
        site = layer_site(graph, layer)
        if site is None or site.weight is None or not rec.scale_w:
            continue
        scale = np.asarray(rec.scale_w, np.float32)
        axis = WEIGHT_AXIS[site.weight_layout] if scale.size > 1 else None
        count = clamped_weights(np.asarray(site.weight.values), scale, axis, rec)
        if count:
            found[layer] = count
    return found


def _deploy_graph(graph: Graph, records: dict[str, LayerRecord]) -> Graph:
    integer = {k: r for k, r in records.items() if integer_capable(graph, layer_site(graph, k), r)}
    rest = {k: r for k, r in records.items() if k not in integer}
    return deploy_model(integer, rest).run(graph)


def _qdq_graph(graph: Graph, records: dict[str, LayerRecord]) -> Graph:
    return qdq_model(records).run(graph)
