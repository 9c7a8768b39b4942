"""AMCT-compatible quantization configs: JSON (PTQ/QAT), ``.cfg`` overrides, layer discovery.

Load a JSON config into frozen dataclasses with :func:`load_quant_config` /
:func:`load_retrain_config`; write one for a model with :func:`create_quant_config` /
:func:`create_quant_retrain_config`. Every invalid setting is reported in one ConfigError.
Layer discovery (which imports torch) is in :mod:`qdqforge.front.config.layers`.
"""

from __future__ import annotations

from qdqforge.errors import ConfigError
from qdqforge.front.config.cfg_ptq import build_quant_config
from qdqforge.front.config.cfg_qat import build_retrain_config
from qdqforge.front.config.create import (
    create_quant_config,
    create_quant_retrain_config,
    read_cfg,
)
from qdqforge.front.config.jsonio import dump_json, write_json
from qdqforge.front.config.layer_types import QuantLayer
from qdqforge.front.config.load import load_config
from qdqforge.front.config.ptq import (
    ActivationQuantParams,
    LayerConfig,
    QuantConfig,
    WeightQuantParams,
)
from qdqforge.front.config.ptq_load import (
    load_quant_config,
    parse_quant_config,
    quant_config_from_dict,
)
from qdqforge.front.config.qat import (
    RetrainConfig,
    RetrainDataConfig,
    RetrainLayerConfig,
    RetrainWeightConfig,
)
from qdqforge.front.config.qat_load import (
    load_retrain_config,
    parse_retrain_config,
    retrain_config_from_dict,
)

__all__ = [
    "ActivationQuantParams",
    "ConfigError",
    "LayerConfig",
    "QuantConfig",
    "QuantLayer",
    "RetrainConfig",
    "RetrainDataConfig",
    "RetrainLayerConfig",
    "RetrainWeightConfig",
    "WeightQuantParams",
    "build_quant_config",
    "build_retrain_config",
    "create_quant_config",
    "create_quant_retrain_config",
    "dump_json",
    "load_config",
    "load_quant_config",
    "load_retrain_config",
    "parse_quant_config",
    "parse_retrain_config",
    "quant_config_from_dict",
    "read_cfg",
    "retrain_config_from_dict",
    "write_json",
]
