"""Sim = deploy, checked on every save (issue 8).

After ``write_quant_models`` has written the two models, the example inputs run through

    (a) the torch model (PTQ: ``reimport`` of the fake-quant ONNX; QAT: the QAT module),
    (b) the fake-quant ONNX in onnxruntime,
    (c) the deploy ONNX in onnxruntime,

and every quantized activation ``<layer>.quant.out`` is compared on its integer grid for (a, b)
and (b, c), in topological order, plus the outputs (:mod:`.verify_budget` says what is allowed).
The result goes to ``<save_path>_verify.json`` and one summary line is logged.

Models saved with external data (> 2 GB) are not verified yet (onnxruntime sessions are built
from the serialized proto here): a warning says so. Beyond the budget a VerificationError
names the first diverging tensor. The model files stay
written: they are valid ONNX, and with the JSON they are what one needs to debug the mismatch
(deleting them would destroy the evidence); the error stops the pipeline all the same.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from torch import nn

from qdqforge.errors import VerificationError
from qdqforge.front.example_inputs import as_arrays
from qdqforge.front.verify_budget import Comparison, VerifyBudget
from qdqforge.front.verify_diffs import grid_errors, output_errors
from qdqforge.front.verify_report import message, summary, write_report
from qdqforge.front.verify_taps import ort_run, torch_run
from qdqforge.graph import io, numerics
from qdqforge.graph.quant_compare import activation_bits, quantized_activations
from qdqforge.runtime import reimport

log = logging.getLogger(__name__)


def verify_path(save_path: str | os.PathLike) -> Path:
    """``<save_path>_verify.json``; a ``dir/`` save_path means ``dir/verify.json``."""
    text = os.fspath(save_path)
    if text.endswith(("/", os.sep)):
        return Path(text) / "verify.json"
    return Path(f"{text}_verify.json")


def verify_saved_models(
    fake_quant: str | os.PathLike,
    deploy: str | os.PathLike,
    inputs,
    save_path: str | os.PathLike,
    *,
    torch_module: nn.Module | None = None,
    budget: VerifyBudget | None = None,
    notes: dict | None = None,
) -> list[Comparison]:
    """Compare torch, fake-quant and deploy on ``inputs``; write the JSON; raise beyond budget.

    Args:
        fake_quant: the fake-quant ONNX file.
        deploy: the deploy ONNX file.
        inputs: a tensor or tuple of tensors/arrays (positional model inputs).
        save_path: the save prefix; the report is ``<save_path>_verify.json``.
        torch_module: the torch side (default: ``reimport`` of the fake-quant ONNX); it is
            run in eval mode under ``no_grad`` and its mode is restored.
        budget: what is allowed (default :class:`VerifyBudget`).
        notes: extra top-level entries for the JSON (the saver's ``deploy_float_layers``).

    Returns:
        The comparisons ``torch_vs_fake_quant`` and ``fake_quant_vs_deploy`` (empty when the
        models have external data and were not checked).

    Raises:
        VerificationError: the first tensor or output beyond the budget, by name.
    """
    budget = budget or VerifyBudget()
    external = [p for p in (fake_quant, deploy) if Path(f"{os.fspath(p)}.data").exists()]
    if external:
        log.warning("%s has external data (> 2 GB): not verified", external[0])
        return []
    fake, dep = io.load_proto(fake_quant), io.load_proto(deploy)
    arrays = as_arrays(inputs)
    comparisons = _compare(fake, dep, arrays, torch_module or reimport(fake))
    violation = next((v for c in comparisons if (v := c.violation(budget))), None)
    report = verify_path(save_path)
    write_report(report, comparisons, violation, budget, arrays, notes or {})
    log.info("%s", summary(report, comparisons, violation))
    if violation is not None:
        raise VerificationError(message(violation, report))
    return comparisons


def _compare(fake: onnx.ModelProto, dep: onnx.ModelProto, arrays, module) -> list[Comparison]:
    order, bits = quantized_activations(fake), activation_bits(fake)
    in_deploy = set(quantized_activations(dep))
    feeds = numerics.feeds_for(fake, arrays)
    names = [o.name for o in fake.graph.output]
    torch_out, torch_q = torch_run(module, fake, arrays)
    if not torch_q:
        raise VerificationError(
            "the torch model exposes no quantized activation to compare: pass the module from "
            "qdqforge.reimport of the fake-quant ONNX, or one whose activation quantizers have "
            "'layer' and 'quant_grid() -> (scale, offset)'"
        )
    fake_out, fake_q = ort_run(fake, order, feeds)
    dep_out, dep_q = ort_run(dep, [n for n in order if n in in_deploy], feeds)
    return [
        Comparison(
            "torch_vs_fake_quant",
            grid_errors(order, torch_q, fake_q, bits),
            output_errors(names, torch_out, fake_out),
            [n for n in order if n not in torch_q],
        ),
        Comparison(
            "fake_quant_vs_deploy",
            grid_errors(order, fake_q, dep_q, bits),
            output_errors(names, fake_out, dep_out),
            [n for n in order if n not in in_deploy],
        ),
    ]
