"""The doctor's runner of the sensitivity engine: the torch ``ProbeModel``, all four variants.

For layer ``L`` (``W`` = ``{L}`` when ``L`` has a quantizable weight, else empty)::

    quantized        activations {L}          weights W
    weight_only      activations {}           weights W        (not run when W is empty)
    activation_only  activations {L}          weights {}
    without          every analyzed layer's activation and weight but L's

A layer without a weight has ``quantized == activation_only``: the one forward is reused. The
sweep's deviations become the :class:`LayerReport` fidelities (:meth:`Fidelity.of`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qdqforge.front.analysis.doctor.fidelity import Fidelity
from qdqforge.front.analysis.doctor.layer_report import LayerReport
from qdqforge.front.analysis.doctor.probe_model import ProbeModel
from qdqforge.front.analysis.doctor.record_params import layer_params
from qdqforge.front.analysis.sensitivity import LayerSensitivity, Variant, sweep
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.record.file import LayerRecord


class ProbeRunner:
    """:class:`~qdqforge.front.analysis.sensitivity.LayerRunner` of a calibrated ProbeModel.

    Attributes:
        reference: the float run's output (the caller's ``probe.run(observe=True)``).
        layers: the analyzed layers, in config order.
        variants: all four (module docstring).
    """

    variants = (Variant.ACTIVATION_ONLY, Variant.QUANTIZED, Variant.WEIGHT_ONLY, Variant.WITHOUT)

    def __init__(self, probe: ProbeModel, reference: np.ndarray) -> None:
        self.probe, self.reference, self.layers = probe, reference, tuple(probe.layers)
        self._last: tuple[frozenset, frozenset, np.ndarray] | None = None

    def run(self, layer: str, variant: Variant) -> np.ndarray | None:
        """The output with ``layer``'s part of the model quantized (module docstring)."""
        weight = frozenset({layer} & set(self.probe.weights))
        if variant is Variant.WEIGHT_ONLY and not weight:
            return None
        switched = {
            Variant.QUANTIZED: (frozenset({layer}), weight),
            Variant.WEIGHT_ONLY: (frozenset(), weight),
            Variant.ACTIVATION_ONLY: (frozenset({layer}), frozenset()),
            Variant.WITHOUT: (
                frozenset(self.probe.probes) - {layer},
                frozenset(self.probe.weights) - {layer},
            ),
        }[variant]
        return self._run(*switched)

    def _run(self, activations: frozenset, weights: frozenset) -> np.ndarray:
        if self._last is None or self._last[:2] != (activations, weights):
            self._last = (activations, weights, self.probe.run(activations, weights))
        return self._last[2]


def doctor_layer_reports(
    probe: ProbeModel,
    reference: np.ndarray,
    layer_types: Mapping[str, str],
    config: QuantConfig,
    records: dict[str, LayerRecord],
) -> tuple[LayerReport, ...]:
    """One :class:`LayerReport` per analyzed layer, from one sweep of :class:`ProbeRunner`."""
    result = sweep(ProbeRunner(probe, reference), progress="doctor")
    return tuple(
        _layer_report(item, layer_types[item.layer], probe, config, records)
        for item in result.layers
    )


def _layer_report(item: LayerSensitivity, layer_type, probe, config, records) -> LayerReport:
    fidelities = {variant: Fidelity.of(dev) for variant, dev in item.deviations.items()}
    return LayerReport(
        name=item.layer,
        layer_type=layer_type,
        quantized=fidelities[Variant.QUANTIZED],
        weight_only=fidelities.get(Variant.WEIGHT_ONLY),
        activation_only=fidelities[Variant.ACTIVATION_ONLY],
        without=fidelities[Variant.WITHOUT],
        **layer_params(probe, item.layer, config, records),
    )
