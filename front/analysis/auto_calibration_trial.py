"""One PTQ trial of ``accuracy_based_auto_calibration``: some layers rolled back, evaluated.

In the trial's own folder: the config with ``quant_enable: false`` on the rolled-back layers ->
(DMQ configs) ``quantize_preprocess`` + ``evaluator.calibration`` -> ``quantize_model`` +
``evaluator.calibration`` (it must run at least ``batch_num`` forwards, as in AMCT) ->
``save_model`` (unverified: only the final save is checked) -> ``evaluator.evaluate`` on the
fake-quant ONNX reimported as a torch module in eval mode -> ``evaluator.metric_eval``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.config.jsonio import write_json
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.ptq.preprocess import quantize_preprocess
from qdqforge.front.ptq.quantize import quantize_model
from qdqforge.front.record.dmq_factors import dmq_layers
from qdqforge.front.save.save_model import save_model
from qdqforge.runtime import reimport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    """What one trial rolled back and how its fake-quant model scored."""

    rolled_back: tuple[str, ...]
    metric: Any
    loss: Any
    passed: bool
    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def record(self) -> Path:
        return self.folder / "record.txt"

    @property
    def modified(self) -> Path:
        return self.folder / "modified.onnx"


class PtqTrials:
    """Runs and remembers trials; ``run(layers)`` is cached per rolled-back set."""

    def __init__(
        self,
        model: nn.Module,
        evaluator,
        config_tree: dict,
        work: Path,
        input_data,
        export_names: dict,
        original_metric,
    ) -> None:
        self.model, self.evaluator, self.tree = model, evaluator, config_tree
        self.work, self.input_data, self.names = work, input_data, export_names
        self.original = original_metric
        self.results: list[TrialResult] = []

    def run(self, rolled_back: Sequence[str]) -> TrialResult:
        """The trial with ``rolled_back`` in float (run now unless it already ran)."""
        for done in self.results:
            if set(done.rolled_back) == set(rolled_back):
                return done
        folder = self.work / f"trial{len(self.results)}"
        folder.mkdir(parents=True)
        result = self._score(tuple(rolled_back), folder)
        self.results.append(result)
        log.info(
            "auto-calibration trial %d: rolled back %s -> metric %s, loss %s, %s",
            len(self.results) - 1,
            list(rolled_back) or "nothing",
            result.metric,
            result.loss,
            "passed" if result.passed else "failed",
        )
        return result

    def _score(self, rolled_back: tuple[str, ...], folder: Path) -> TrialResult:
        config = write_json(folder / "config.json", rolled_back_config(self.tree, rolled_back))
        record, modified = folder / "record.txt", folder / "modified.onnx"
        if dmq_layers(load_quant_config(config)):
            pre = quantize_preprocess(str(config), str(record), self.model, self.input_data)
            self.evaluator.calibration(pre)
        calib = quantize_model(
            str(config), str(modified), str(record), self.model, self.input_data, **self.names
        )
        self.evaluator.calibration(calib)
        paths = save_model(str(modified), str(record), str(folder / "net"), verify=False)
        metric = self.evaluator.evaluate(reimport(paths.fake_quant).eval())
        passed, loss = judged(self.evaluator.metric_eval(self.original, metric))
        return TrialResult(rolled_back, metric, loss, passed, folder)


def rolled_back_config(tree: dict, layers: Sequence[str]) -> dict:
    """A copy of the config JSON tree with ``quant_enable: false`` on ``layers``."""
    out = copy.deepcopy(tree)
    for layer in layers:
        if not isinstance(out.get(layer), dict):
            raise ConfigError(f"auto-calibration: layer '{layer}' is not in the config")
        out[layer]["quant_enable"] = False
    return out


def judged(answer) -> tuple[bool, Any]:
    """``metric_eval``'s ``(passed, loss)``; anything else is a ConfigError."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ConfigError(
            f"model_evaluator.metric_eval must return (bool, loss), got {answer!r}; see "
            "AMCT's AutoCalibrationEvaluatorBase"
        )
    return bool(answer[0]), answer[1]
