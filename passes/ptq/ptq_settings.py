"""The PTQ config values the PTQ passes read (``act_observe``, ``arq_weights``, ``dmq_observe``).

Passes sit below ``front/`` and never import it: they state here, as Protocols, the part of a
PTQ config they use, and ``front`` hands its ``QuantConfig`` in through ``PassContext.config``
(it matches these Protocols structurally). Members are read-only properties so that frozen
dataclasses match them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class ActivationSettings(Protocol):
    """A layer's activation calibration settings (observer node attributes)."""

    @property
    def num_bits(self) -> int: ...
    @property
    def act_algo(self) -> str: ...
    @property
    def max_percentile(self) -> float | None: ...
    @property
    def min_percentile(self) -> float | None: ...
    @property
    def search_range(self) -> tuple[float, float] | None: ...
    @property
    def search_step(self) -> float | None: ...
    @property
    def num_of_bins(self) -> int | None: ...


@runtime_checkable
class WeightSettings(Protocol):
    """A layer's weight quantization settings."""

    @property
    def wts_algo(self) -> str: ...
    @property
    def channel_wise(self) -> bool: ...


@runtime_checkable
class PtqLayerSettings(Protocol):
    """One layer of a PTQ config."""

    @property
    def name(self) -> str: ...
    @property
    def quant_enable(self) -> bool: ...
    @property
    def dmq_balancer_param(self) -> float | None: ...
    @property
    def activation_quant_params(self) -> ActivationSettings: ...
    @property
    def weight_quant_params(self) -> WeightSettings | None: ...


@runtime_checkable
class PtqSettings(Protocol):
    """A PTQ config: its layers in order and the global values the passes need."""

    @property
    def batch_num(self) -> int: ...
    @property
    def layers(self) -> Sequence[PtqLayerSettings]: ...
    def with_offset(self, layer: PtqLayerSettings) -> bool:
        """Asymmetric activations for ``layer``."""

    def weight_bits(self, layer: PtqLayerSettings) -> int:
        """Bit width of ``layer``'s weight grid."""


def ptq_layers(config: PtqSettings | None) -> Sequence[PtqLayerSettings]:
    """The layers of ``config`` in order; none when the pipeline runs without a config."""
    return config.layers if config is not None else ()


def enabled_layers(config: PtqSettings | None, stats: dict[str, int]) -> Iterator[PtqLayerSettings]:
    """The ``quant_enable`` layers of ``config`` in order, counting the others in ``stats``.

    A disabled layer adds one to ``stats["disabled"]`` (the PTQ twin of ``retrain_sites``).
    """
    for layer in ptq_layers(config):
        if layer.quant_enable:
            yield layer
        else:
            stats["disabled"] = stats.get("disabled", 0) + 1
