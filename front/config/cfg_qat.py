"""Resolve a QAT ``.cfg`` (``AMCTRetrainConfig``, docs/amct.md §2.4) per layer.

Data and weight settings resolve separately, each from the first that sets it:
``override_layer_configs`` > ``override_layer_types`` > the global
``retrain_data_quant_config``/``retrain_weight_quant_config`` > defaults (ULQ INT8 data, ARQ
INT8 weights, channel_wise on convolutions only). ``skip_layers``, ``skip_layer_types``,
``quant_skip_layers``, ``quant_skip_types`` and weight-shared layers get
``retrain_enable: false``; MatMul layers (our extension) are enabled only by an override.
Pruning (``prune_config``) is not supported and is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from qdqforge.front.config.cfg_names import check_names
from qdqforge.front.config.issues import Issues, join
from qdqforge.front.config.layer_types import (
    CHANNEL_WISE_TYPES,
    DEFAULT_ON,
    MATMUL,
    QAT_TYPES,
    QuantLayer,
    default_channel_wise,
)
from qdqforge.front.config.qat import (
    RetrainConfig,
    RetrainDataConfig,
    RetrainLayerConfig,
    RetrainWeightConfig,
)
from qdqforge.front.config.qat_load import retrain_config_from_dict
from qdqforge.front.proto.text import proto_float

log = logging.getLogger(__name__)
DATA_TYPES, WEIGHT_TYPES = ("INT8",), ("INT8", "INT4")


def build_retrain_config(cfg, layers: Sequence[QuantLayer], source: str) -> RetrainConfig:
    """Turn an ``AMCTRetrainConfig`` message into a validated RetrainConfig for ``layers``.

    Raises:
        ConfigError: every invalid field of ``cfg``, by field path.
    """
    layers = [layer for layer in layers if layer.layer_type in QAT_TYPES]
    issues = Issues(source)
    check_retrain_cfg(cfg, layers, issues)
    issues.raise_if_any()
    by_name = {o.layer_name: o for o in cfg.override_layer_configs}
    by_type = {o.layer_type: o for o in cfg.override_layer_types}
    off = {*cfg.skip_layers, *cfg.quant_skip_layers}
    off_types = {*cfg.skip_layer_types, *cfg.quant_skip_types}
    entries = []
    for layer in layers:
        chain = [by_name.get(layer.name), by_type.get(layer.layer_type), cfg]
        chain = [item for item in chain if item is not None]
        wanted = layer.layer_type in DEFAULT_ON or len(chain) > 1
        skipped = layer.name in off or layer.layer_type in off_types
        entries.append(_layer_config(layer, chain, wanted and not skipped and not layer.sharing))
    mode = "FORCE_FP16_QUANT" if cfg.HasField("fakequant_precision_mode") else None
    config = RetrainConfig(
        batch_num=cfg.batch_num,
        fakequant_precision_mode=mode,
        weight_reduce_range=cfg.weight_reduce_range,
        layers=tuple(entries),
    )
    return retrain_config_from_dict(config.to_dict(), source, layers)


def check_retrain_cfg(cfg, layers: Sequence[QuantLayer], issues: Issues) -> None:
    """Record every invalid field of an ``AMCTRetrainConfig`` message."""
    types = {layer.name: layer.layer_type for layer in layers}
    if cfg.batch_num <= 0:
        issues.add("batch_num", cfg.batch_num, "integer > 0")
    for field in ("skip_layers", "quant_skip_layers"):
        check_names(getattr(cfg, field), field, types, issues)
    for field in ("skip_layer_types", "quant_skip_types"):
        check_names(getattr(cfg, field), field, QAT_TYPES, issues, what="layer type")
    if cfg.HasField("prune_config"):
        issues.note("prune_config", "pruning is not supported by qdqforge (quantization only)")
    _check_quant(cfg, "", None, issues)
    kinds = [o.layer_type for o in cfg.override_layer_types]
    check_names(kinds, "override_layer_types", QAT_TYPES, issues, what="layer type")
    for item in cfg.override_layer_types:
        _check_quant(item, f"override_layer_types[{item.layer_type}]", item.layer_type, issues)
    names = [o.layer_name for o in cfg.override_layer_configs]
    check_names(names, "override_layer_configs", types, issues)
    for item in cfg.override_layer_configs:
        path = f"override_layer_configs[{item.layer_name}]"
        _check_quant(item, path, types.get(item.layer_name), issues)


def _check_quant(msg, path: str, layer_type: str | None, issues: Issues) -> None:
    if path and msg.HasField("prune_config"):
        issues.note(join(path, "prune_config"), "pruning is not supported by qdqforge")
    data = msg.retrain_data_quant_config
    if data.HasField("ulq_quantize"):
        ulq, sub = data.ulq_quantize, join(path, "retrain_data_quant_config.ulq_quantize")
        if ulq.HasField("clip_max_min"):
            clip = ulq.clip_max_min
            if not proto_float(clip.clip_max) > 0:
                issues.add(join(sub, "clip_max_min.clip_max"), proto_float(clip.clip_max), "> 0")
            if not proto_float(clip.clip_min) < 0:
                issues.add(join(sub, "clip_max_min.clip_min"), proto_float(clip.clip_min), "< 0")
        _check_dst(ulq, sub, DATA_TYPES, issues)
    weights = msg.retrain_weight_quant_config
    algo = weights.WhichOneof("weights_retrain_algo")
    if algo is not None:
        sub = join(path, f"retrain_weight_quant_config.{algo}")
        _check_dst(getattr(weights, algo), sub, WEIGHT_TYPES, issues)
        wts = getattr(weights, algo)
        if layer_type is not None and wts.channel_wise and layer_type not in CHANNEL_WISE_TYPES:
            issues.add(join(sub, "channel_wise"), True, f"false for {layer_type} layers")


def _check_dst(msg, path: str, allowed: tuple[str, ...], issues: Issues) -> None:
    name = _dst_name(msg)
    if name not in allowed:
        issues.add(join(path, "dst_type"), name, " | ".join(allowed))


def _dst_name(msg) -> str:
    enum = msg.DESCRIPTOR.fields_by_name["dst_type"].enum_type
    return enum.values_by_number[msg.dst_type].name


def _layer_config(layer: QuantLayer, chain: list, enable: bool) -> RetrainLayerConfig:
    data = next(
        (c.retrain_data_quant_config for c in chain if c.HasField("retrain_data_quant_config")),
        None,
    )
    weights = next(
        (c.retrain_weight_quant_config for c in chain if c.HasField("retrain_weight_quant_config")),
        None,
    )
    return RetrainLayerConfig(
        name=layer.name,
        retrain_enable=enable,
        retrain_data_config=_data(data),
        retrain_weight_config=None
        if layer.layer_type == MATMUL
        else _weights(weights, layer.layer_type),
    )


def _data(msg) -> RetrainDataConfig:
    if msg is None or not msg.HasField("ulq_quantize"):
        return RetrainDataConfig()
    ulq = msg.ulq_quantize
    clip = ulq.clip_max_min if ulq.HasField("clip_max_min") else None
    return RetrainDataConfig(
        clip_max=proto_float(clip.clip_max) if clip else None,
        clip_min=proto_float(clip.clip_min) if clip else None,
        fixed_min=ulq.fixed_min if ulq.HasField("fixed_min") else None,
        dst_type=_dst_name(ulq),
    )


def _weights(msg, layer_type: str) -> RetrainWeightConfig:
    default_cw = default_channel_wise(layer_type)
    algo = None if msg is None else msg.WhichOneof("weights_retrain_algo")
    if algo is None:
        return RetrainWeightConfig(channel_wise=default_cw)
    wts = getattr(msg, algo)
    channel_wise = wts.channel_wise and default_cw if wts.HasField("channel_wise") else default_cw
    return RetrainWeightConfig(algo=algo, channel_wise=channel_wise, dst_type=_dst_name(wts))
