"""Write the fake-quant and deploy ONNX of a calibrated or trained model (spec §5).

Shared by PTQ ``save_model`` and QAT ``save_quant_retrain_model``: both hand over a float graph
(BN folded, balance Muls kept) and a ``{layer: LayerRecord}`` with ``scale_d``/``offset_d`` and
``scale_w`` per layer. ``insert_qdq`` puts QuantizeLinear/DequantizeLinear on each layer's input
and weight -> ``<save_path>_fake_quant_model.onnx``.

The deploy model ``<save_path>_deploy_model.onnx`` runs Conv and Linear layers on integers
(``integer_layers``: QuantizeLinear -> ConvInteger/MatMulInteger with int8 weights -> int32 bias
Add -> Cast -> Mul(s_d * s_w)); other quantized layers (ConvTranspose, AveragePool) keep Q/DQ
with their weights stored as int8 (``insert_qdq`` with ``int8_weights``), and so do layers with
16-bit activations (record ``act_type`` INT16, AMCT's A16W8): ONNX has no ConvInteger/
MatMulInteger for int16 inputs, so in the deploy model they run as
``DequantizeLinear(int16 x) -> op(DequantizeLinear(int8 W), float bias)``, the fake-quant
model's arithmetic; the log and ``_verify.json`` (``deploy_float_layers``) name them. Their
int16 Q/DQ pairs need opset 21: both graphs are upgraded first (``opset_upgrade``).

Given ``verify_inputs``, the written models are then checked against the torch model on their
integer grids (:mod:`qdqforge.front.verify_save`, ``<save_path>_verify.json``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

from torch import nn

from qdqforge.errors import OutputError
from qdqforge.front.record import LayerRecord
from qdqforge.front.verify_budget import VerifyBudget
from qdqforge.front.verify_save import verify_saved_models
from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import layer_site
from qdqforge.passes.act_grid import wide_layers, with_opset_upgrade
from qdqforge.passes.base import PassContext
from qdqforge.passes.integer_layers import integer_capable
from qdqforge.passes.pipeline import run_pipeline

log = logging.getLogger(__name__)


class SavedModels(NamedTuple):
    """Paths written by :func:`write_quant_models`."""

    fake_quant: Path
    deploy: Path | None


def output_path(save_path: str | os.PathLike, kind: str) -> Path:
    """``<save_path>_<kind>_model.onnx``; a ``dir/`` save_path means no name prefix."""
    text = os.fspath(save_path)
    if text.endswith(("/", os.sep)):
        return Path(text) / f"{kind}_model.onnx"
    return Path(f"{text}_{kind}_model.onnx")


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
    """Insert Q/DQ for ``records`` into ``graph`` and write the output models.

    Args:
        graph: float graph (BN folded, balance Muls in place); it is consumed.
        records: per-layer ``scale_d``/``offset_d``/``scale_w`` (layers absent stay float).
        save_path: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).
        verify_inputs: example inputs (tensor or tuple); None skips the check.
        torch_module: the torch side of the check (default: ``reimport`` of the fake-quant
            ONNX; QAT passes its QAT module, see :mod:`qdqforge.front.verify_taps`).
        verify: False skips the check; a :class:`VerifyBudget` replaces the default budget.

    Raises:
        VerificationError: the models disagree beyond the budget (the files stay written).
    """
    check_save_path(save_path)
    deploy = _deploy_graph(graph.copy(), records)
    ctx = PassContext(options={"insert_qdq": {"records": records}})
    fake = run_pipeline(graph, with_opset_upgrade(records, ("insert_qdq",)), ctx=ctx).graph
    paths = SavedModels(
        io.save(fake, output_path(save_path, "fake_quant")),
        io.save(deploy, output_path(save_path, "deploy")),
    )
    log.info("wrote %s and %s", *paths)
    notes = _deploy_notes(records)
    if verify is not False and verify_inputs is not None:
        budget = verify if isinstance(verify, VerifyBudget) else None
        verify_saved_models(
            *paths, verify_inputs, save_path, torch_module=torch_module, budget=budget, notes=notes
        )
    return paths


def _deploy_notes(records: dict[str, LayerRecord]) -> dict:
    wide = wide_layers(records)
    if wide:
        log.info(
            "deploy: %d layer(s) with int16 activations run as DequantizeLinear + float op "
            "(no int16 ConvInteger/MatMulInteger in ONNX): %s",
            len(wide),
            ", ".join(wide),
        )
    return {"deploy_float_layers": wide}


def _deploy_graph(graph: Graph, records: dict[str, LayerRecord]) -> Graph:
    integer = {k: r for k, r in records.items() if integer_capable(graph, layer_site(graph, k), r)}
    rest = {k: r for k, r in records.items() if k not in integer}
    options = {
        "integer_layers": {"records": integer},
        "insert_qdq": {"records": rest, "int8_weights": True},
    }
    passes = with_opset_upgrade(records, ("integer_layers", "insert_qdq"))
    return run_pipeline(graph, passes, ctx=PassContext(options=options)).graph
