"""Validate a QAT JSON tree into a :class:`RetrainConfig`, collecting every violation.

Rules (docs/amct.md §2.3): ``algo`` ulq_quantize for data, arq_retrain | ulq_retrain for
weights; ``clip_max`` > 0 and ``clip_min`` < 0, given together; data ``dst_type`` INT8, weight
``dst_type`` INT8 or INT4 (our extension); ``channel_wise`` true only on convolutions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from qdqforge.front.config import fields as f
from qdqforge.front.config.config_layers import read_config_fields
from qdqforge.front.config.issues import MISSING, Issues, join
from qdqforge.front.config.jsonio import parse_json, read_json
from qdqforge.front.config.layer_types import (
    CHANNEL_WISE_TYPES,
    MATMUL,
    QAT_TYPES,
    QuantLayer,
    default_channel_wise,
)
from qdqforge.front.config.qat import (
    DATA_KEYS,
    DATA_TYPES,
    GLOBAL_KEYS,
    LAYER_KEYS,
    WEIGHT_KEYS,
    WEIGHT_TYPES,
    RetrainConfig,
    RetrainDataConfig,
    RetrainLayerConfig,
    RetrainWeightConfig,
)


def load_retrain_config(
    path: str | os.PathLike, layers: Sequence[QuantLayer] | None = None
) -> RetrainConfig:
    """Load and validate a QAT JSON config file.

    Args:
        path: JSON written by ``create_quant_retrain_config`` (ours or AMCT's) or by hand.
        layers: the model's quantizable layers; enables name, type and sharing checks.

    Returns:
        The validated config.

    Raises:
        ConfigError: every violation, each with key path, bad value and what is allowed.
    """
    return retrain_config_from_dict(read_json(path), os.fspath(path), layers)


def parse_retrain_config(
    text: str, source: str = "<json>", layers: Sequence[QuantLayer] | None = None
) -> RetrainConfig:
    """Like :func:`load_retrain_config`, from JSON text."""
    return retrain_config_from_dict(parse_json(text, source), source, layers)


def retrain_config_from_dict(
    tree: Mapping, source: str = "<dict>", layers: Sequence[QuantLayer] | None = None
) -> RetrainConfig:
    """Validate a parsed JSON object (see :func:`load_retrain_config`)."""
    issues = Issues(source)
    known = {x.name: x for x in layers if x.layer_type in QAT_TYPES} if layers is not None else None
    config = RetrainConfig(**read_config_fields(tree, issues, GLOBAL_KEYS, known, _layer))
    issues.raise_if_any()
    return config


def _layer(name: str, obj: Mapping, layer: QuantLayer | None, issues: Issues) -> RetrainLayerConfig:
    f.check_keys(obj, name, LAYER_KEYS, issues)
    layer_type = layer.layer_type if layer else None
    enable = f.get_bool(obj, "retrain_enable", name, issues, True)
    if enable and layer is not None and layer.sharing:
        issues.add(join(name, "retrain_enable"), True, f"false (layer {layer.sharing})")
    data = f.get_object(obj, "retrain_data_config", name, issues) or {}
    wts = f.get_object(obj, "retrain_weight_config", name, issues)
    if wts is not None and layer_type == MATMUL:
        issues.note(
            join(name, "retrain_weight_config"), "a MatMul between activations has no weights"
        )
        wts = None
    if wts is None and layer_type not in (None, MATMUL):
        wts = {}
    return RetrainLayerConfig(
        name=name,
        retrain_enable=enable,
        retrain_data_config=_data(data, join(name, "retrain_data_config"), issues),
        retrain_weight_config=None
        if wts is None
        else _weights(wts, join(name, "retrain_weight_config"), layer_type, issues),
    )


def _data(obj: Mapping, path: str, issues: Issues) -> RetrainDataConfig:
    f.check_keys(obj, path, DATA_KEYS, issues)
    clip_max = f.get_float(obj, "clip_max", path, issues, None, lambda v: v > 0, "a number > 0")
    clip_min = f.get_float(obj, "clip_min", path, issues, None, lambda v: v < 0, "a number < 0")
    if ("clip_max" in obj) != ("clip_min" in obj):
        missing = "clip_min" if "clip_max" in obj else "clip_max"
        issues.add(join(path, missing), MISSING, "clip_max and clip_min are given together")
    return RetrainDataConfig(
        algo=f.get_choice(obj, "algo", path, issues, "ulq_quantize", ("ulq_quantize",)),
        clip_max=clip_max,
        clip_min=clip_min,
        fixed_min=f.get_choice(obj, "fixed_min", path, issues, None, (True, False, None)),
        dst_type=f.get_choice(obj, "dst_type", path, issues, "INT8", DATA_TYPES),
    )


def _weights(obj: Mapping, path: str, layer_type: str | None, issues) -> RetrainWeightConfig:
    f.check_keys(obj, path, WEIGHT_KEYS, issues)
    default_cw = MISSING if layer_type is None else default_channel_wise(layer_type)
    channel_wise = f.get_bool(obj, "channel_wise", path, issues, default_cw)
    if channel_wise and layer_type is not None and layer_type not in CHANNEL_WISE_TYPES:
        issues.add(join(path, "channel_wise"), True, f"false for {layer_type} layers")
    return RetrainWeightConfig(
        algo=f.get_choice(obj, "algo", path, issues, "arq_retrain", ("arq_retrain", "ulq_retrain")),
        channel_wise=channel_wise,
        dst_type=f.get_choice(obj, "dst_type", path, issues, "INT8", WEIGHT_TYPES),
    )
