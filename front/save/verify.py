"""Sim = deploy, checked on every save, as written and as a default runtime runs it.

After ``write_quant_models`` has written the fake-quant, QDQ and deploy models, the example
inputs (their first ``VerifyBudget.samples`` samples, 2 by default, along the batch axis:
:mod:`qdqforge.graph.batch_samples`; all of them where the models cannot run fewer) run through
the torch model (PTQ: the calibration module rebuilt from the modified ONNX
and the record; QAT: the QAT module) and the three models, and every quantized activation
``<layer>.quant.out`` is compared on its integer grid, forced (:mod:`.verify_budget`):

reference stage, every model as written, onnxruntime optimizations off:
    ``torch_vs_fake_quant``, ``fake_quant_vs_qdq`` (with optimizations off the QDQ model is the
    fake-quant model's arithmetic with the deploy format's int32 bias: compared with the
    fake-quant model's float biases fed in, the int32 biases checked on their own and their
    effect measured apart as ``fake_quant_vs_qdq_bias``, :mod:`.verify_bias`), ``qdq_vs_deploy``;
runtime stage, as ``ort.InferenceSession(path)`` runs it (:mod:`.verify_runtime`):
    ``torch_vs_fake_quant_session``, ``deploy_vs_deploy_session``, ``qdq_vs_qdq_session``.

Each saved model is read once and its weights held as arrays (:mod:`qdqforge.graph.held_arrays`):
the exposed, forced and optimized copies the comparisons run carry no weights, and every
session reads the same arrays. A weight read back equal, bit for bit, to the array of the graph
the model was written from (the fake-quant model's float weights) is held as that array, which
the check holds anyway, and an optimized graph's unchanged weights as the saved model's own
(``known``), and the QDQ and deploy models' int8 weights as views of the mapped files (found in
their bytes, ``graph.wire``). 0.60 GB MLP, the save's peak above the interpreter: PTQ 6.33x ->
4.39x -> 3.83x its weights, QAT 7.34x -> 5.39x -> 4.84x. A reference-stage violation, or the
fake-quant model's in the runtime stage, is the tool's fault: a VerificationError names the
first diverging tensor (the fault lies between the quantized tensor before it and it). A QDQ or
deploy model that the runtime computes differently is logged as one warning with its cause and
fix and listed under ``runtime_warnings``; a tensor that the int32 bias grid moves beyond the
round-off budget is a warning under ``bias_grid_warnings``.
``<save_path>_verify.json`` holds it all (:mod:`.verify_report`); the files stay written (they
are what one debugs with).

Models with external data (over 2 GB) are checked with their weights read in place: each saved
model's external tensors are read-only maps of its ``.data`` file (``held_arrays.hold_file``),
the PTQ reference module wraps the modified graph's mapped weights without a copy, the
reference stage feeds the weights as inputs (onnxruntime reads them in place; it copies
initializers) and every run hands the pages back. The fake-quant model's runtime-stage run is
left out there (a default session copies and prepacks every float weight), and the JSON's
``skipped`` says so; the QDQ and deploy models' int8 weights run in default sessions as always.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from qdqforge.errors import QdqforgeError, VerificationError
from qdqforge.front.entry.example_inputs import as_arrays
from qdqforge.front.save import verify_bias
from qdqforge.front.save.verify_budget import BIAS, BIAS_GRID, Comparison, VerifyBudget
from qdqforge.front.save.verify_diffs import free_running, grid_errors, output_errors
from qdqforge.front.save.verify_report import Verdict, message, summary, write_report
from qdqforge.front.save.verify_runtime import runtime_comparison, runtime_issue
from qdqforge.front.save.verify_taps import Run, ort_forced, ort_run, torch_run
from qdqforge.front.save.verify_ties import explain_ties
from qdqforge.graph import numerics
from qdqforge.graph.batch_samples import Samples, first_samples
from qdqforge.graph.held_arrays import hold_file
from qdqforge.graph.quant_compare import activation_bits, quantized_activations

log = logging.getLogger(__name__)

FLOAT_SESSION = "torch_vs_fake_quant_session"  # the fake-quant model in a default session


def verify_path(save_path: str | os.PathLike) -> Path:
    """``<save_path>_verify.json``; a ``dir/`` save_path means ``dir/verify.json``."""
    text = os.fspath(save_path)
    if text.endswith(("/", os.sep)):
        return Path(text) / "verify.json"
    return Path(f"{text}_verify.json")


def verify_saved_models(
    paths,
    inputs,
    save_path: str | os.PathLike,
    *,
    torch_module: nn.Module,
    budget: VerifyBudget | None = None,
    notes: dict | None = None,
    known: dict | None = None,
) -> Verdict:
    """Compare the torch model and the saved models on ``inputs``; write the JSON; raise.

    Args:
        paths: the written ``SavedModels`` (fake_quant, deploy, qdq).
        inputs: a tensor or tuple of tensors/arrays (positional model inputs).
        save_path: the save prefix; the report is ``<save_path>_verify.json``.
        torch_module: the torch side, run in eval mode under ``no_grad`` (mode restored); its
            activation quantizers expose ``layer`` and ``quant_grid()``.
        budget: what is allowed (default :class:`VerifyBudget`).
        notes: extra top-level entries for the JSON (the saver's ``deploy_float_layers``).
        known: ``{initializer name: array}`` the caller holds anyway: a saved tensor equal to
            one bit for bit is held as it, not as a second copy (``held_arrays.hold_file``).

    Returns:
        The verdict (comparisons, first violation, runtime warnings).

    Raises:
        VerificationError: the first tensor, kernel or output beyond the budget that the tool
            is responsible for, by name.
    """
    budget, report = budget or VerifyBudget(), verify_path(save_path)
    held = {k: hold_file(p, known=known) for k, p in paths._asdict().items()}  # weights once
    models = {k: h.model for k, h in held.items()}
    skipped = _skipped(paths)
    sites = verify_bias.bias_sites(models["fake_quant"], models["qdq"])
    given = as_arrays(inputs)
    samples = first_samples(models["fake_quant"], given, budget.samples)
    comparisons, samples = _compare_samples(
        models, samples, given, torch_module, sites, budget, skipped
    )
    verdict = _judge(comparisons, budget)
    verdict.violation = verify_bias.misplaced_bias(sites) or verdict.violation  # more precise
    bias = next(c for c in verdict.comparisons if c.kind == BIAS_GRID)
    verdict.bias_warnings = verify_bias.coarse_bias_issues(bias, sites, models["qdq"], budget)
    notes = {**(notes or {}), "samples": {"used": samples.used, "given": samples.given}}
    if skipped:
        notes["skipped"] = skipped
    write_report(report, verdict, budget, samples.arrays, notes)
    log.info("%s", summary(report, verdict))
    for issue in [*verdict.runtime_warnings, *verdict.bias_warnings]:
        log.warning("%s: %s", report.name, issue.text())
    if verdict.violation is not None:
        raise VerificationError(message(verdict.violation, report))
    return verdict


def _skipped(paths) -> dict[str, str]:
    """Comparisons left out, and why: a fake-quant model with external data (over 2 GB) is not
    run in a default session (onnxruntime copies and prepacks every float weight it is handed
    as a constant: 2-3x the weights beside the save); its reference-stage runs read the weights
    in place."""
    if not Path(f"{os.fspath(paths.fake_quant)}.data").exists():
        return {}
    why = "fake-quant model with external data: a default session would copy every float weight"
    return {FLOAT_SESSION: why}


def _compare_samples(
    models: dict, samples: Samples, given, module, sites, budget: VerifyBudget, skipped: dict
) -> tuple[list[Comparison], Samples]:
    """The comparisons on ``samples``; on all ``given`` samples where the models cannot run on
    fewer than they were exported with (:mod:`qdqforge.graph.batch_samples`)."""
    try:
        return _compare(models, samples.arrays, module, sites, budget, skipped), samples
    except QdqforgeError:
        raise
    except Exception as e:  # whatever stopped the cut batch, the whole batch decides
        if not samples.cut:
            raise
        log.info(
            "the save-time check could not run on %s of %s samples (%s: %s); it runs on all",
            samples.used,
            samples.given,
            type(e).__name__,
            str(e).splitlines()[0][:200] if str(e) else "",
        )
    every = Samples(given, samples.given, samples.given)
    return _compare(models, given, module, sites, budget, skipped), every


def _compare(
    models: dict, arrays, module, sites, budget: VerifyBudget, skipped: dict[str, str]
) -> list[Comparison]:
    fake = models["fake_quant"]
    names, bits = quantized_activations(fake), activation_bits(fake)
    feeds = numerics.feeds_for(fake, arrays)
    torch_side = torch_run(module, arrays)
    if not torch_side[1]:
        raise VerificationError(
            "the torch model exposes no quantized activation to compare: its activation "
            "quantizers need 'layer' and 'quant_grid() -> (scale, offset)'"
        )
    free = {k: ort_run(m, names, feeds) for k, m in models.items()}
    biases = verify_bias.float_bias_feeds(sites)
    pairs = [
        ("torch_vs_fake_quant", torch_side, fake, "fake_quant", "round_off", {}),
        ("fake_quant_vs_qdq", free["fake_quant"], models["qdq"], "qdq", BIAS, biases),
        ("fake_quant_vs_qdq_bias", free["fake_quant"], models["qdq"], "qdq", BIAS_GRID, {}),
        ("qdq_vs_deploy", free["qdq"], models["deploy"], "deploy", "round_off", {}),
    ]
    result = [
        _forced(n, a, b, free[k], names, feeds, bits, kind, floats)
        for n, a, b, k, kind, floats in pairs
    ]
    both = (models["qdq"], models["deploy"])  # two ONNX models: their float ties can be read
    result[-1] = explain_ties(result[-1], budget, both, feeds, free["qdq"][1])
    sessions = [
        (FLOAT_SESSION, fake, torch_side),
        ("deploy_vs_deploy_session", models["deploy"], free["deploy"]),
        ("qdq_vs_qdq_session", models["qdq"], free["qdq"]),
    ]
    sessions = [s for s in sessions if s[0] not in skipped]
    result += [runtime_comparison(n, m, ref, names, feeds, bits) for n, m, ref in sessions]
    return result


def _forced(name, a: Run, model, b_free: Run, names, feeds, bits, kind, floats) -> Comparison:
    outputs = [o.name for o in model.graph.output]
    b_out, b_q = ort_forced(model, model, feeds, a[1], floats)
    comparison = Comparison(
        name,
        "reference",
        grid_errors(names, a[1], b_q, bits),
        output_errors(outputs, a[0], b_out),
        kind=kind,
        not_compared=[n for n in names if n in a[1] and n not in b_q],
    )
    comparison.free_running = free_running(names, a, b_free, bits)
    return comparison


def _judge(comparisons: list[Comparison], budget: VerifyBudget) -> Verdict:
    violation, warnings = None, []
    layers = sorted({t.tensor.removesuffix(".quant.out") for c in comparisons for t in c.tensors})
    for c in comparisons:
        found = c.violation(budget) if c.kind != BIAS_GRID else None  # measured: verify_bias
        if found is None:
            continue
        if c.stage == "reference" or c.name == FLOAT_SESSION:
            violation = violation or found
        else:
            model = c.name.split("_vs_")[0]
            warnings.append(runtime_issue(model, c, found, layers))
    return Verdict(comparisons, violation, warnings)
