"""The QAT config (``create_quant_retrain_config`` JSON, docs/amct.md §2.3) as dataclasses.

``to_dict`` emits AMCT's key order and leaves out optional keys that are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdqforge.front.config.config_layers import ConfigLayers


@dataclass(frozen=True)
class RetrainDataConfig:
    """``retrain_data_config``: ULQ activation quantization.

    ``clip_max``/``clip_min`` None means "initialise from data"; ``fixed_min`` None means "auto:
    true iff the producer is a Relu".
    """

    algo: str = "ulq_quantize"
    clip_max: float | None = None
    clip_min: float | None = None
    fixed_min: bool | None = None
    dst_type: str = "INT8"

    def to_dict(self) -> dict:
        """JSON object in AMCT key order."""
        out: dict = {"algo": self.algo}
        if self.clip_max is not None:
            out["clip_max"] = self.clip_max
        if self.clip_min is not None:
            out["clip_min"] = self.clip_min
        if self.fixed_min is not None:
            out["fixed_min"] = self.fixed_min
        out["dst_type"] = self.dst_type
        return out


@dataclass(frozen=True)
class RetrainWeightConfig:
    """``retrain_weight_config``: ARQ or ULQ weight quantization; INT4 is our extension."""

    algo: str = "arq_retrain"
    channel_wise: bool = True
    dst_type: str = "INT8"

    def to_dict(self) -> dict:
        """JSON object in AMCT key order."""
        return {"algo": self.algo, "channel_wise": self.channel_wise, "dst_type": self.dst_type}


@dataclass(frozen=True)
class RetrainLayerConfig:
    """One layer entry; ``retrain_weight_config`` is None for MatMul between activations."""

    name: str
    retrain_enable: bool = True
    retrain_data_config: RetrainDataConfig = field(default_factory=RetrainDataConfig)
    retrain_weight_config: RetrainWeightConfig | None = field(default_factory=RetrainWeightConfig)

    def to_dict(self) -> dict:
        """JSON object for this layer (without its name)."""
        out: dict = {
            "retrain_enable": self.retrain_enable,
            "retrain_data_config": self.retrain_data_config.to_dict(),
        }
        if self.retrain_weight_config is not None:
            out["retrain_weight_config"] = self.retrain_weight_config.to_dict()
        return out


@dataclass(frozen=True)
class RetrainConfig(ConfigLayers):
    """A whole QAT config; ``layers`` keep file (or model) order."""

    version: int = 1
    batch_num: int = 1
    fakequant_precision_mode: str | None = None
    weight_reduce_range: bool = False
    layers: tuple[RetrainLayerConfig, ...] = ()

    def weight_bits(self, layer: RetrainLayerConfig) -> int:
        """Bit width of ``layer``'s weight grid: its ``dst_type``; INT8 becomes 7 bits (in an
        int8 container) under ``weight_reduce_range`` (saturation-safe u8 x s8 kernels)."""
        bits = int(layer.retrain_weight_config.dst_type.removeprefix("INT"))
        return 7 if self.weight_reduce_range and bits == 8 else bits

    def to_dict(self) -> dict:
        """JSON object in AMCT key order (globals first, then layers)."""
        out: dict = {"version": self.version, "batch_num": self.batch_num}
        return self._with_options_and_layers(out)


GLOBAL_KEYS = ("version", "batch_num", "fakequant_precision_mode", "weight_reduce_range")
LAYER_KEYS = ("retrain_enable", "retrain_data_config", "retrain_weight_config")
DATA_KEYS = ("algo", "clip_max", "clip_min", "fixed_min", "dst_type")
WEIGHT_KEYS = ("algo", "channel_wise", "dst_type")
DATA_TYPES = ("INT8",)
WEIGHT_TYPES = ("INT8", "INT4")
