"""Validate a PTQ JSON tree into a :class:`QuantConfig`, collecting every violation.

Ranges are AMCT's (docs/amct.md §2.1). When the model's quantizable layers are given,
layer names, per-type rules (channel_wise, weight bits, DMQ) and weight sharing are checked too.
16-bit activations follow :mod:`.act_bits` (A16W8 only, not under FORCE_FP16_QUANT).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from qdqforge.front.config import fields as f
from qdqforge.front.config.act_bits import check_layers
from qdqforge.front.config.config_layers import read_config_fields
from qdqforge.front.config.issues import Issues, join
from qdqforge.front.config.jsonio import parse_json, read_json
from qdqforge.front.config.layer_types import CONV_TYPES, QuantLayer, has_weights
from qdqforge.front.config.ptq import GLOBAL_KEYS, LAYER_KEYS, LayerConfig, QuantConfig
from qdqforge.front.config.ptq_params import activation_params, weight_params


def load_quant_config(
    path: str | os.PathLike, layers: Sequence[QuantLayer] | None = None
) -> QuantConfig:
    """Load and validate a PTQ JSON config file.

    Args:
        path: JSON written by ``create_quant_config`` (ours or AMCT's) or by hand.
        layers: the model's quantizable layers; enables name, type and sharing checks.

    Returns:
        The validated config.

    Raises:
        ConfigError: every violation, each with key path, bad value and what is allowed.
    """
    return quant_config_from_dict(read_json(path), os.fspath(path), layers)


def parse_quant_config(
    text: str, source: str = "<json>", layers: Sequence[QuantLayer] | None = None
) -> QuantConfig:
    """Like :func:`load_quant_config`, from JSON text."""
    return quant_config_from_dict(parse_json(text, source), source, layers)


def quant_config_from_dict(
    tree: Mapping, source: str = "<dict>", layers: Sequence[QuantLayer] | None = None
) -> QuantConfig:
    """Validate a parsed JSON object (see :func:`load_quant_config`)."""
    issues = Issues(source)
    known = {layer.name: layer for layer in layers} if layers is not None else None
    config = QuantConfig(**read_config_fields(tree, issues, GLOBAL_KEYS, known, _layer, _globals))
    check_layers(config, issues)  # 16-bit activations: A16W8 only, not under FORCE_FP16_QUANT
    issues.raise_if_any()
    return config


def _globals(tree: Mapping, known: Mapping | None, issues: Issues) -> dict:
    """PTQ's own globals, between ``batch_num`` and ``fakequant_precision_mode``."""
    return {
        "activation_offset": f.get_bool(tree, "activation_offset", "", issues, True),
        "do_fusion": f.get_bool(tree, "do_fusion", "", issues, True),
        "skip_fusion_layers": _skip_fusion(tree, known, issues),
    }


def _skip_fusion(tree: Mapping, known: Mapping | None, issues: Issues) -> tuple[str, ...]:
    names = f.get_str_list(tree, "skip_fusion_layers", "", issues)
    if known is None:
        return names
    for name in names:
        if name not in known or known[name].layer_type not in CONV_TYPES:
            issues.add("skip_fusion_layers", name, "names of convolution layers of the model")
    return names


def _layer(name: str, obj: Mapping, layer: QuantLayer | None, issues: Issues) -> LayerConfig:
    f.check_keys(obj, name, LAYER_KEYS, issues)
    layer_type = layer.layer_type if layer else None
    weighted = has_weights(layer_type)
    enable = f.get_bool(obj, "quant_enable", name, issues, True)
    if enable and layer is not None and layer.sharing:
        issues.add(join(name, "quant_enable"), True, f"false (layer {layer.sharing})")
    dmq = f.get_float(
        obj, "dmq_balancer_param", name, issues, None, lambda v: 0.2 <= v <= 0.8, "[0.2, 0.8]"
    )
    if dmq is not None and weighted is False:
        issues.note(
            join(name, "dmq_balancer_param"), f"DMQ needs a layer with weights, not {layer_type}"
        )
    act = f.get_object(obj, "activation_quant_params", name, issues)
    wts = f.get_object(obj, "weight_quant_params", name, issues)
    if wts is not None and layer_type == "MatMul":
        issues.note(
            join(name, "weight_quant_params"), "a MatMul between activations has no weights"
        )
        wts = None
    if wts is None and weighted:
        wts = {}
    return LayerConfig(
        name=name,
        quant_enable=enable,
        dmq_balancer_param=dmq,
        activation_quant_params=activation_params(
            act or {}, join(name, "activation_quant_params"), issues
        ),
        weight_quant_params=None
        if wts is None
        else weight_params(wts, join(name, "weight_quant_params"), layer_type, issues),
    )
