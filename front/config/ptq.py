"""The PTQ config (``create_quant_config`` JSON, docs/amct.md §2.1) as frozen dataclasses.

``to_dict`` emits keys in AMCT's order and leaves out optional keys that are ``None``, so
``QuantConfig -> JSON -> QuantConfig -> JSON`` is the identity on text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdqforge.front.config.config_layers import ConfigLayers

IFMR_DEFAULTS = {
    "max_percentile": 0.999999,
    "min_percentile": 0.999999,
    "search_range": (0.7, 1.3),
    "search_step": 0.01,
}
HFMG_DEFAULT_BINS = 4096
ADA_DEFAULTS = {"num_iteration": 10000, "reg_param": 0.01, "beta_range": (20, 2), "warm_start": 0.2}


@dataclass(frozen=True)
class ActivationQuantParams:
    """``activation_quant_params``: IFMR fields are None under HFMG and vice versa."""

    num_bits: int = 8
    act_algo: str = "ifmr"
    max_percentile: float | None = 0.999999
    min_percentile: float | None = 0.999999
    search_range: tuple[float, float] | None = (0.7, 1.3)
    search_step: float | None = 0.01
    num_of_bins: int | None = None
    asymmetric: bool | None = None

    def to_dict(self) -> dict:
        """JSON object in AMCT key order."""
        out: dict = {"num_bits": self.num_bits, "act_algo": self.act_algo}
        if self.act_algo == "hfmg":
            out["num_of_bins"] = self.num_of_bins
        else:
            out["max_percentile"] = self.max_percentile
            out["min_percentile"] = self.min_percentile
            out["search_range"] = list(self.search_range or ())
            out["search_step"] = self.search_step
        if self.asymmetric is not None:
            out["asymmetric"] = self.asymmetric
        return out


@dataclass(frozen=True)
class WeightQuantParams:
    """``weight_quant_params``: ADA fields are None unless ``wts_algo == "ada_quantize"``."""

    num_bits: int = 8
    wts_algo: str = "arq_quantize"
    channel_wise: bool = True
    num_iteration: int | None = None
    reg_param: float | None = None
    beta_range: tuple[float, float] | None = None
    warm_start: float | None = None

    def to_dict(self) -> dict:
        """JSON object in AMCT key order."""
        out: dict = {
            "num_bits": self.num_bits,
            "wts_algo": self.wts_algo,
            "channel_wise": self.channel_wise,
        }
        if self.wts_algo == "ada_quantize":
            out["num_iteration"] = self.num_iteration
            out["reg_param"] = self.reg_param
            out["beta_range"] = list(self.beta_range or ())
            out["warm_start"] = self.warm_start
        return out


@dataclass(frozen=True)
class LayerConfig:
    """One layer entry; ``weight_quant_params`` is None for weightless MatMul layers."""

    name: str
    quant_enable: bool = True
    dmq_balancer_param: float | None = None
    activation_quant_params: ActivationQuantParams = field(default_factory=ActivationQuantParams)
    weight_quant_params: WeightQuantParams | None = field(default_factory=WeightQuantParams)

    def to_dict(self) -> dict:
        """JSON object for this layer (without its name)."""
        out: dict = {"quant_enable": self.quant_enable}
        if self.dmq_balancer_param is not None:
            out["dmq_balancer_param"] = self.dmq_balancer_param
        out["activation_quant_params"] = self.activation_quant_params.to_dict()
        if self.weight_quant_params is not None:
            out["weight_quant_params"] = self.weight_quant_params.to_dict()
        return out


@dataclass(frozen=True)
class QuantConfig(ConfigLayers):
    """A whole PTQ config; ``layers`` keep file (or model) order."""

    version: int = 1
    batch_num: int = 1
    activation_offset: bool = True
    do_fusion: bool = True
    skip_fusion_layers: tuple[str, ...] = ()
    fakequant_precision_mode: str | None = None
    weight_reduce_range: bool = False
    layers: tuple[LayerConfig, ...] = ()

    def with_offset(self, layer: LayerConfig) -> bool:
        """Asymmetric activations for ``layer``: its ``asymmetric``, else ``activation_offset``."""
        asym = layer.activation_quant_params.asymmetric
        return self.activation_offset if asym is None else asym

    def weight_bits(self, layer: LayerConfig) -> int:
        """Bit width of ``layer``'s weight grid: its ``num_bits``; 8 becomes 7 (in an int8
        container) under ``weight_reduce_range`` (saturation-safe u8 x s8 kernels)."""
        bits = layer.weight_quant_params.num_bits
        return 7 if self.weight_reduce_range and bits == 8 else bits

    def to_dict(self) -> dict:
        """JSON object in AMCT key order (globals first, then layers)."""
        out: dict = {
            "version": self.version,
            "batch_num": self.batch_num,
            "activation_offset": self.activation_offset,
            "do_fusion": self.do_fusion,
            "skip_fusion_layers": list(self.skip_fusion_layers),
        }
        return self._with_options_and_layers(out)


GLOBAL_KEYS = (
    "version",
    "batch_num",
    "activation_offset",
    "do_fusion",
    "skip_fusion_layers",
    "fakequant_precision_mode",
    "weight_reduce_range",
)
LAYER_KEYS = (
    "quant_enable",
    "dmq_balancer_param",
    "activation_quant_params",
    "weight_quant_params",
)
IFMR_KEYS = tuple(IFMR_DEFAULTS)
HFMG_KEYS = ("num_of_bins",)
ACT_KEYS = ("num_bits", "act_algo", "asymmetric", *IFMR_KEYS, *HFMG_KEYS)
WEIGHT_KEYS = ("num_bits", "wts_algo", "channel_wise", *ADA_DEFAULTS)
