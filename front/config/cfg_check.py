"""Range checks for ``CalibrationConfig`` messages of a PTQ ``.cfg`` (AMCTConfig).

Paths name the ``.cfg`` field, e.g. ``override_layer_types[Linear].calibration_config.
hfmg_quantize.num_of_bins``. ``layer_type`` is None for ``common_config``, which applies to many
types (type-specific rules are then applied when the config is resolved per layer).
``dst_type`` is INT8 or INT16 (:mod:`.act_bits`: INT16 needs 8-bit weights in the same
``calibration_config`` and no ``fakequant_precision_mode``).
"""

from __future__ import annotations

from qdqforge.front.config.act_bits import DST_TYPE_BITS, check_a16w8, check_fp16_mode
from qdqforge.front.config.issues import Issues, join
from qdqforge.front.config.layer_types import CHANNEL_WISE_TYPES, has_weights, weight_bits_allowed
from qdqforge.front.config.ptq_params import HFMG_BINS
from qdqforge.front.proto.text import proto_float
from qdqforge.runtime.calibration.ifmr_cost import candidate_problem


def check_calibration(
    msg, path: str, layer_type: str | None, issues: Issues, fp16_mode: str | None = None
) -> None:
    """Record every out-of-range value of one CalibrationConfig message.

    ``fp16_mode`` is the config's ``fakequant_precision_mode`` (refuses INT16 activations).
    """
    if msg.HasField("arq_quantize"):
        _check_arq(msg.arq_quantize, join(path, "arq_quantize"), layer_type, issues)
    if msg.HasField("ada_quantize"):
        _check_ada(msg.ada_quantize, join(path, "ada_quantize"), layer_type, issues)
    if msg.HasField("ifmr_quantize"):
        _check_ifmr(msg.ifmr_quantize, join(path, "ifmr_quantize"), issues)
    if msg.HasField("hfmg_quantize"):
        hfmg, sub = msg.hfmg_quantize, join(path, "hfmg_quantize")
        if hfmg.num_of_bins not in HFMG_BINS:
            issues.add(join(sub, "num_of_bins"), hfmg.num_of_bins, "1024 | 2048 | 4096 | 8192")
    _check_dst(msg, path, issues, fp16_mode)
    if msg.HasField("dmq_balancer"):
        strength = proto_float(msg.dmq_balancer.migration_strength)
        if not 0.2 <= strength <= 0.8:
            issues.add(join(path, "dmq_balancer.migration_strength"), strength, "[0.2, 0.8]")
        if has_weights(layer_type) is False:
            issues.note(
                join(path, "dmq_balancer"), f"DMQ needs a layer with weights, not {layer_type}"
            )


def _check_arq(arq, path: str, layer_type: str | None, issues: Issues) -> None:
    if arq.HasField("quant_bits") and arq.quant_bits not in weight_bits_allowed(layer_type):
        allowed = " | ".join(map(str, weight_bits_allowed(layer_type)))
        issues.add(join(path, "quant_bits"), arq.quant_bits, f"{allowed} for {layer_type or 'any'}")
    _check_channel_wise(arq, path, layer_type, issues)


def _check_channel_wise(msg, path: str, layer_type: str | None, issues: Issues) -> None:
    if layer_type is not None and msg.channel_wise and layer_type not in CHANNEL_WISE_TYPES:
        issues.add(join(path, "channel_wise"), True, f"false for {layer_type} layers")


def _check_ada(ada, path: str, layer_type: str | None, issues: Issues) -> None:
    if ada.num_iteration <= 0:
        issues.add(join(path, "num_iteration"), ada.num_iteration, "integer > 0")
    if not proto_float(ada.reg_param) > 0:
        issues.add(join(path, "reg_param"), proto_float(ada.reg_param), "a number > 0")
    start, end = proto_float(ada.beta_range_start), proto_float(ada.beta_range_end)
    if not start > end > 0:
        issues.add(join(path, "beta_range_start/end"), [start, end], "start > end > 0")
    if not 0 < proto_float(ada.warm_start) < 1:
        issues.add(join(path, "warm_start"), proto_float(ada.warm_start), "(0, 1)")
    if has_weights(layer_type) is False:
        issues.note(path, f"AdaRound needs a layer with weights, not {layer_type}")
    _check_channel_wise(ada, path, layer_type, issues)


def _check_ifmr(ifmr, path: str, issues: Issues) -> None:
    start, end = proto_float(ifmr.search_range_start), proto_float(ifmr.search_range_end)
    if not 0 < start < end:
        issues.add(join(path, "search_range_start/end"), [start, end], "0 < start < end")
    step = proto_float(ifmr.search_step)
    if not step > 0:
        issues.add(join(path, "search_step"), step, "a number > 0")
    elif 0 < start < end and (problem := candidate_problem((start, end), step)) is not None:
        issues.note(join(path, "search_step"), f"got {step!r}: {problem}")
    for name in ("max_percentile", "min_percentile"):
        value = proto_float(getattr(ifmr, name))
        if not 0.5 < value <= 1:
            issues.add(join(path, name), value, "(0.5, 1]")


def dst_type_bits(msg) -> int:
    """Activation bits of a CalibrationConfig: its ifmr/hfmg ``dst_type`` (INT8 when absent)."""
    for name in ("ifmr_quantize", "hfmg_quantize"):
        if msg.HasField(name):
            act = getattr(msg, name)
            enum = act.DESCRIPTOR.fields_by_name["dst_type"].enum_type
            return DST_TYPE_BITS[enum.values_by_number[act.dst_type].name]
    return 8


def _check_dst(msg, path: str, issues: Issues, fp16_mode: str | None) -> None:
    act = next((n for n in ("ifmr_quantize", "hfmg_quantize") if msg.HasField(n)), None)
    if act is None:
        return
    where, bits = join(path, f"{act}.dst_type"), dst_type_bits(msg)
    weights = msg.arq_quantize if msg.HasField("arq_quantize") else None
    if weights is not None and weights.HasField("quant_bits"):
        check_a16w8(where, bits, weights.quant_bits, issues, cfg=True)
    check_fp16_mode(where, bits, fp16_mode, issues, cfg=True)
