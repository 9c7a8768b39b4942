"""``accuracy_based_auto_calibration``: PTQ, evaluate, roll sensitive layers back (docs/amct.md §1).

1. ``evaluate(model)`` gives the float metric.
2. Trial with nothing rolled back (:mod:`.auto_calibration_trial`); if ``metric_eval`` passes,
   that is the result.
3. Otherwise rank the quantized layers by sensitivity (:mod:`.layer_sensitivity`: cosine of the
   float output vs the output with only that layer quantized, lowest first) and binary-search
   the smallest ``k`` such that rolling back the first ``k`` ranked layers passes (assumes that
   rolling back more never hurts): ``k`` in ``1 .. n-1`` (at least one layer stays quantized),
   about ``log2(n)`` trials.
4. The passing trial is saved with verification (``save_model``) to ``<save_dir>_*_model.onnx``
   (fake-quant, QDQ, deploy),
   its record to ``record_file``, its config to ``<save_dir>_quant_config.json`` and the report
   (ranking, every trial's rolled-back layers, metric and loss) to
   ``<save_dir>_auto_calibration.json``. ``save_dir`` is a prefix, as AMCT's (``dir/`` = none).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch import nn

from qdqforge.errors import ConfigError, QuantizationError
from qdqforge.front.analysis.auto_calibration_report import prefixed, write_report
from qdqforge.front.analysis.auto_calibration_trial import PtqTrials, TrialResult
from qdqforge.front.analysis.layer_sensitivity import float_graph, layer_cosines, rank_by_cosine
from qdqforge.front.config.jsonio import read_json
from qdqforge.front.export.io_names import check_io_names
from qdqforge.front.prelude import checked_inputs
from qdqforge.front.record.file import read_record
from qdqforge.front.save.roles import save_outputs
from qdqforge.front.save.save_model import save_model
from qdqforge.front.save.verify import verify_path
from qdqforge.front.save.write_models import SavedModels, output_path
from qdqforge.graph.io import atomic_write_bytes, prepare_target
from qdqforge.graph.path_roles import check_roles

log = logging.getLogger(__name__)

STRATEGIES = ("BinarySearch",)
SENSITIVITIES = ("CosineSimilarity",)
EVALUATOR_METHODS = ("calibration", "evaluate", "metric_eval")


def accuracy_based_auto_calibration(
    model: nn.Module,
    model_evaluator,
    config_file: str | os.PathLike,
    record_file: str | os.PathLike,
    save_dir: str | os.PathLike,
    input_data,
    input_names=None,
    output_names=None,
    dynamic_axes=None,
    strategy: str = "BinarySearch",
    sensitivity: str = "CosineSimilarity",
) -> SavedModels:
    """Quantize ``model``, rolling the most sensitive layers back to float until it passes.

    Args:
        model: the float torch model (left untouched).
        model_evaluator: object with ``calibration(model)`` (runs >= ``batch_num`` forwards),
            ``evaluate(model) -> metric`` and ``metric_eval(original, new) -> (bool, loss)``.
        config_file: PTQ JSON config (not modified).
        record_file: where the final record goes (overwritten).
        save_dir: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).
        input_data: example input, a tensor or a tuple of tensors.
        input_names: optional names of the ONNX inputs.
        output_names: optional names of the ONNX outputs.
        dynamic_axes: accepted for AMCT compatibility (the batch axis is always dynamic).
        strategy: only ``"BinarySearch"``.
        sensitivity: only ``"CosineSimilarity"``.

    Returns:
        The paths of the final fake-quant, QDQ and deploy models.

    Raises:
        ConfigError: a bad evaluator, strategy or sensitivity.
        QuantizationError: even with all but one layer in float, metric_eval fails.
        VerificationError: the final models disagree (see ``save_model``).
        OutputError: an output is the config or another output, or cannot be written.
    """
    _check_arguments(model_evaluator, strategy, sensitivity)
    check_io_names(input_names, output_names, "accuracy_based_auto_calibration")
    check_roles(
        "accuracy_based_auto_calibration",
        inputs={"config_file": config_file},
        outputs={
            "record_file": record_file,
            **save_outputs(save_dir, "save_dir"),
            "save_dir quant config": prefixed(save_dir, "quant_config.json"),
            "save_dir report": prefixed(save_dir, "auto_calibration.json"),
        },
    )
    checked_inputs("accuracy_based_auto_calibration", model, input_data)  # trials export later
    tree = read_json(config_file)
    original = model_evaluator.evaluate(model)
    names = {"input_names": input_names, "output_names": output_names}
    save_dir = os.fspath(save_dir)
    prepare_target(output_path(save_dir, "fake_quant"))  # OutputError: folder not writable
    with tempfile.TemporaryDirectory(dir=Path(save_dir).parent, prefix=".autocal-") as work:
        trials = PtqTrials(model, model_evaluator, tree, Path(work), input_data, names, original)
        first = trials.run(())
        ranking, final = {}, first
        if not first.passed:
            ranking = _ranking(first, model, input_data)
            final = _search(trials, rank_by_cosine(ranking))
        report = dict(
            strategy=strategy,
            sensitivity=sensitivity,
            original_metric=original,
            ranking=ranking,
            trials=trials.results,
            final=final,
        )
        if final is None:
            path = write_report(prefixed(save_dir, "auto_calibration.json"), **report)
            raise QuantizationError(_unreachable(path, ranking))
        return _save(final, record_file, save_dir, report)


def _check_arguments(evaluator, strategy: str, sensitivity: str) -> None:
    missing = [m for m in EVALUATOR_METHODS if not callable(getattr(evaluator, m, None))]
    if missing:
        raise ConfigError(
            f"model_evaluator ({type(evaluator).__name__}) lacks {', '.join(missing)}: it needs "
            "calibration(model), evaluate(model) and metric_eval(original_metric, new_metric) "
            "-> (bool, loss), as AMCT's AutoCalibrationEvaluatorBase"
        )
    for key, value, valid in (
        ("strategy", strategy, STRATEGIES),
        ("sensitivity", sensitivity, SENSITIVITIES),
    ):
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not supported; valid: {', '.join(valid)}")


def _ranking(first: TrialResult, model, input_data) -> dict[str, float]:
    records = {k: r for k, r in read_record(first.record).items() if r.scale_d is not None}
    graph = float_graph(first.config, first.record, model, input_data)
    return layer_cosines(graph, records, input_data)


def _search(trials: PtqTrials, ranked: list[str]) -> TrialResult | None:
    k = smallest_passing_prefix(len(ranked) - 1, lambda k: trials.run(ranked[:k]).passed)
    return None if k is None else trials.run(ranked[:k])


def smallest_passing_prefix(limit: int, passes: Callable[[int], bool]) -> int | None:
    """Smallest ``k`` in ``1..limit`` with ``passes(k)``, for a monotone ``passes``; else None.

    ``passes(0)`` is known to be False; ``passes(limit)`` is only called when every smaller
    ``k`` tried failed.
    """
    lo, hi, hi_passed = 0, limit, False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi, hi_passed = mid, True
        else:
            lo = mid
    if hi < 1 or not (hi_passed or passes(hi)):
        return None
    return hi


def _save(final: TrialResult, record_file, save_dir: str, report: dict) -> SavedModels:
    """Record, config and report first: a VerificationError of the save leaves them all."""
    atomic_write_bytes(record_file, final.record.read_bytes())
    config = prefixed(save_dir, "quant_config.json")
    atomic_write_bytes(config, final.config.read_bytes())
    models = {kind: output_path(save_dir, kind) for kind in SavedModels._fields}  # save_model's
    files = {
        **models,
        "verify": verify_path(save_dir),
        "config": config,
        "record": Path(record_file),
    }
    write_report(prefixed(save_dir, "auto_calibration.json"), **report, files=files)
    log.info(
        "auto-calibration: rolled back %s; metric %s (float %s)",
        list(final.rolled_back) or "nothing",
        final.metric,
        report["original_metric"],
    )
    return save_model(str(final.modified), str(final.record), save_dir)


def _unreachable(report: Path, ranking: dict[str, float]) -> str:
    return (
        f"auto-calibration: metric_eval fails even with all but one of the {len(ranking)} "
        f"quantized layers rolled back to float; every trial is in {report}. Check "
        "metric_eval's target, or quantize fewer layers by hand (quant_enable: false)"
    )
