"""The per-layer sensitivity engine: one sweep, a pluggable runner, any metric from its errors.

For every layer ``L`` a runner knows and every variant ``v`` it offers::

    t[L, v] = runner.run(L, v)                      the output with part of the model quantized
    d[L, v] = deviation(runner.reference, t[L, v])  (sums of r^2, t^2, r t, (t - r)^2)

and a :class:`~qdqforge.front.analysis.sensitivity_metrics.Metric` (cosine similarity, SQNR,
relative L2) turns each ``d`` into a number, so one sweep gives every metric. Variants:
``quantized`` (``L``'s weight and input activation), ``weight_only``, ``activation_only`` and
``without`` (every layer but ``L``: the model's fidelity if ``L`` were skipped).

Two runners, because the two users measure different models on different engines (merged: the
sweep, the variants, the deviation, every metric and the ranking rule; separate: only how one
run is produced):

* :class:`~qdqforge.front.analysis.layer_sensitivity.OnnxLayerRunner`: onnxruntime
  (``ORT_DISABLE_ALL``) on the modified ONNX before ARQ, ``insert_qdq`` on ``L`` alone from a
  trial's record (weight and activation Q/DQ on the record's grids, int32 bias under 8-bit
  activations; ``quantized`` only). Used by ``accuracy_based_auto_calibration`` (AMCT's
  ``CosineSimilarity``): it ranks with the first trial's own record and graph.
* :class:`~qdqforge.front.analysis.sensitivity_probe.ProbeRunner`: the doctor's torch
  ``ProbeModel`` (reimported once, switches per layer: all four variants in one forward each,
  float bias, its own calibration unless a record is given): one reimport serves every run,
  where the onnxruntime runner builds a Q/DQ graph and a session per run.

Given the same record the two agree within 0.021 dB of SQNR per layer (the doctor's test MLP;
``tests/front/analysis/test_sensitivity.py``).

:func:`rank`: the most sensitive layer first (lowest value of a higher-is-better metric), ties
by name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from qdqforge.front.analysis.sensitivity_metrics import Deviation, Metric, deviation
from qdqforge.front.ptq.calibration import progress_disabled


class Variant(enum.Enum):
    """Which part of the model is fake-quantized in one run of a layer's sweep."""

    QUANTIZED = "quantized"
    WEIGHT_ONLY = "weight_only"
    ACTIVATION_ONLY = "activation_only"
    WITHOUT = "without"


class LayerRunner(Protocol):
    """Runs a model with part of it fake-quantized; outputs flattened to float64.

    Attributes:
        reference: the float run's output.
        layers: the layers to sweep, in report order.
        variants: the variants :meth:`run` offers.
    """

    reference: np.ndarray
    layers: Sequence[str]
    variants: tuple[Variant, ...]

    def run(self, layer: str, variant: Variant) -> np.ndarray | None:
        """The output for ``layer`` in ``variant``; None when it does not apply to the layer."""
        ...


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer's deviations from the float output, per variant the runner could run."""

    layer: str
    deviations: Mapping[Variant, Deviation]

    def value(self, metric: Metric, variant: Variant = Variant.QUANTIZED) -> float | None:
        """``metric`` of ``variant``; None when the variant did not apply to this layer."""
        dev = self.deviations.get(variant)
        return None if dev is None else metric.of(dev)


@dataclass(frozen=True)
class Sweep:
    """What :func:`sweep` measured, one :class:`LayerSensitivity` per layer in runner order."""

    layers: tuple[LayerSensitivity, ...]

    def values(self, metric: Metric, variant: Variant = Variant.QUANTIZED) -> dict[str, float]:
        """``{layer: metric}`` of the layers ``variant`` applied to."""
        found = {item.layer: item.value(metric, variant) for item in self.layers}
        return {layer: value for layer, value in found.items() if value is not None}

    def ranking(self, metric: Metric, variant: Variant = Variant.QUANTIZED) -> list[str]:
        """Layers, most sensitive by ``metric`` first (:func:`rank`)."""
        return rank(self.values(metric, variant), metric)


def sweep(runner: LayerRunner, progress: str | None = None) -> Sweep:
    """Run every variant of every layer of ``runner`` once and keep the deviations.

    Args:
        runner: the model to sweep (module docstring).
        progress: a progress bar's label (none when None or progress is disabled).

    Returns:
        The :class:`Sweep`; any metric is computed from it afterwards.
    """
    quiet = progress is None or progress_disabled()
    layers = tqdm(runner.layers, desc=progress, unit="layer", disable=quiet)
    return Sweep(tuple(_layer(runner, layer) for layer in layers))


def _layer(runner: LayerRunner, layer: str) -> LayerSensitivity:
    deviations = {}
    for variant in runner.variants:  # one output alive at a time: a model's outputs can be large
        output = runner.run(layer, variant)
        if output is not None:
            deviations[variant] = deviation(runner.reference, output)
    return LayerSensitivity(layer, deviations)


def rank(values: Mapping[str, float], metric: Metric) -> list[str]:
    """Layer names, most sensitive by ``metric`` first; ties by name."""
    sign = 1.0 if metric.higher_is_better else -1.0
    return sorted(values, key=lambda name: (sign * values[name], name))
