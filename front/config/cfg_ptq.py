"""Resolve a PTQ ``.cfg`` (``AMCTConfig`` protobuf text, docs/amct.md §2.2) per layer.

Priority (AMCT ptq_config.md): ``override_layer_configs`` > ``override_layer_types`` >
``common_config`` > built-in defaults. The winning ``calibration_config`` applies as a whole:
an algorithm group it leaves out (weights, activations, DMQ) takes the built-in default, not the
lower-priority config. From ``common_config`` (which spans types) ``channel_wise: true`` reaches
only convolutions, 6/7-bit weights only Conv2d, DMQ and ``ada_quantize`` only layers with
weights; in an override the same settings on the wrong type are errors. ``asymmetric`` left out
falls back to the global ``activation_offset``. MatMul layers (our extension) are enabled only by
an override naming them or the ``"MatMul"`` type. ``skip_layers``/``skip_layer_types`` and
weight-shared layers are written with ``quant_enable: false``.
"""

from __future__ import annotations

from collections.abc import Sequence

from qdqforge.front.config.cfg_check import check_calibration, dst_type_bits
from qdqforge.front.config.cfg_names import check_names
from qdqforge.front.config.issues import Issues
from qdqforge.front.config.layer_types import (
    CONV_TYPES,
    DEFAULT_ON,
    MATMUL,
    PTQ_TYPES,
    QuantLayer,
    default_channel_wise,
    has_weights,
    weight_bits_allowed,
)
from qdqforge.front.config.ptq import (
    ActivationQuantParams,
    LayerConfig,
    QuantConfig,
    WeightQuantParams,
)
from qdqforge.front.config.ptq_load import quant_config_from_dict
from qdqforge.front.proto.text import proto_float


def build_quant_config(cfg, layers: Sequence[QuantLayer], source: str) -> QuantConfig:
    """Turn an ``AMCTConfig`` message into a validated QuantConfig for ``layers``.

    Raises:
        ConfigError: every invalid field of ``cfg``, by field path.
    """
    issues = Issues(source)
    check_cfg(cfg, layers, issues)
    issues.raise_if_any()
    by_name = {o.layer_name: o.calibration_config for o in cfg.override_layer_configs}
    by_type = {o.layer_type: o.calibration_config for o in cfg.override_layer_types}
    common = cfg.common_config if cfg.HasField("common_config") else None
    off = set(cfg.skip_layers)
    entries = []
    for layer in layers:
        calib = by_name.get(layer.name, by_type.get(layer.layer_type, common))
        wanted = (
            layer.layer_type in DEFAULT_ON or layer.name in by_name or layer.layer_type in by_type
        )
        skipped = layer.name in off or layer.layer_type in cfg.skip_layer_types
        enable = wanted and not skipped and not layer.sharing
        entries.append(_layer_config(layer, calib, enable))
    config = QuantConfig(
        batch_num=cfg.batch_num,
        activation_offset=cfg.activation_offset,
        do_fusion=cfg.do_fusion,
        skip_fusion_layers=tuple(cfg.skip_fusion_layers),
        fakequant_precision_mode="FORCE_FP16_QUANT"
        if cfg.HasField("fakequant_precision_mode")
        else None,
        weight_reduce_range=cfg.weight_reduce_range,
        layers=tuple(entries),
    )
    return quant_config_from_dict(config.to_dict(), source, layers)  # one validator for both


def check_cfg(cfg, layers: Sequence[QuantLayer], issues: Issues) -> None:
    """Record every invalid field of an ``AMCTConfig`` message."""
    types = {layer.name: layer.layer_type for layer in layers}
    if cfg.batch_num <= 0:
        issues.add("batch_num", cfg.batch_num, "integer > 0")
    check_names(cfg.skip_layers, "skip_layers", types, issues)
    check_names(cfg.skip_layer_types, "skip_layer_types", PTQ_TYPES, issues, what="layer type")
    convs = [name for name, kind in types.items() if kind in CONV_TYPES]
    check_names(cfg.skip_fusion_layers, "skip_fusion_layers", convs, issues, what="conv layer")
    mode = "FORCE_FP16_QUANT" if cfg.HasField("fakequant_precision_mode") else None
    if cfg.HasField("common_config"):
        check_calibration(cfg.common_config, "common_config", None, issues, mode)
    kinds = [o.layer_type for o in cfg.override_layer_types]
    check_names(kinds, "override_layer_types", PTQ_TYPES, issues, what="layer type")
    for item in cfg.override_layer_types:
        if item.layer_type in PTQ_TYPES:
            path = f"override_layer_types[{item.layer_type}].calibration_config"
            check_calibration(item.calibration_config, path, item.layer_type, issues, mode)
    names = [o.layer_name for o in cfg.override_layer_configs]
    check_names(names, "override_layer_configs", types, issues)
    for item in cfg.override_layer_configs:
        if item.layer_name in types:
            path = f"override_layer_configs[{item.layer_name}].calibration_config"
            check_calibration(item.calibration_config, path, types[item.layer_name], issues, mode)


def _layer_config(layer: QuantLayer, calib, enable: bool) -> LayerConfig:
    weighted = has_weights(layer.layer_type)
    dmq = None
    if calib is not None and calib.HasField("dmq_balancer") and weighted:
        dmq = proto_float(calib.dmq_balancer.migration_strength)
    return LayerConfig(
        name=layer.name,
        quant_enable=enable,
        dmq_balancer_param=dmq,
        activation_quant_params=_activation(calib),
        weight_quant_params=_weights(calib, layer.layer_type)
        if layer.layer_type != MATMUL
        else None,
    )


def _activation(calib) -> ActivationQuantParams:
    if calib is not None and calib.HasField("hfmg_quantize"):
        hfmg = calib.hfmg_quantize
        asym = hfmg.asymmetric if hfmg.HasField("asymmetric") else None
        bits = dst_type_bits(calib)
        return ActivationQuantParams(bits, "hfmg", None, None, None, None, hfmg.num_of_bins, asym)
    if calib is None or not calib.HasField("ifmr_quantize"):
        return ActivationQuantParams()
    ifmr = calib.ifmr_quantize
    return ActivationQuantParams(
        num_bits=dst_type_bits(calib),
        max_percentile=proto_float(ifmr.max_percentile),
        min_percentile=proto_float(ifmr.min_percentile),
        search_range=(proto_float(ifmr.search_range_start), proto_float(ifmr.search_range_end)),
        search_step=proto_float(ifmr.search_step),
        asymmetric=ifmr.asymmetric if ifmr.HasField("asymmetric") else None,
    )


def _weights(calib, layer_type: str) -> WeightQuantParams:
    default_cw = default_channel_wise(layer_type)
    # common_config's ada_quantize spans types: a weightless AvgPool2d keeps ARQ's (unused) default
    if calib is not None and calib.HasField("ada_quantize") and has_weights(layer_type):
        ada = calib.ada_quantize
        return WeightQuantParams(
            wts_algo="ada_quantize",
            channel_wise=_channel_wise(ada, default_cw),
            num_iteration=ada.num_iteration,
            reg_param=proto_float(ada.reg_param),
            beta_range=(proto_float(ada.beta_range_start), proto_float(ada.beta_range_end)),
            warm_start=proto_float(ada.warm_start),
        )
    if calib is None or not calib.HasField("arq_quantize"):
        return WeightQuantParams(channel_wise=default_cw)
    arq = calib.arq_quantize
    bits = arq.quant_bits if arq.HasField("quant_bits") else 8
    bits = bits if bits in weight_bits_allowed(layer_type) else 8
    return WeightQuantParams(num_bits=bits, channel_wise=_channel_wise(arq, default_cw))


def _channel_wise(msg, default_cw: bool) -> bool:
    # A convolution may turn channel_wise off; nothing else can turn it on.
    return msg.channel_wise and default_cw if msg.HasField("channel_wise") else default_cw
