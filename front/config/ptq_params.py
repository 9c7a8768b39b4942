"""Validate ``activation_quant_params`` and ``weight_quant_params`` objects of a PTQ config."""

from __future__ import annotations

from collections.abc import Mapping

from qdqforge.front.config import fields as f
from qdqforge.front.config.act_bits import ACT_BITS
from qdqforge.front.config.issues import MISSING, Issues, join
from qdqforge.front.config.layer_types import (
    CHANNEL_WISE_TYPES,
    default_channel_wise,
    has_weights,
    weight_bits_allowed,
)
from qdqforge.front.config.ptq import (
    ACT_KEYS,
    ADA_DEFAULTS,
    HFMG_DEFAULT_BINS,
    HFMG_KEYS,
    IFMR_DEFAULTS,
    IFMR_KEYS,
    WEIGHT_KEYS,
    ActivationQuantParams,
    WeightQuantParams,
)
from qdqforge.runtime.calibration.ifmr_cost import candidate_problem

HFMG_BINS = (1024, 2048, 4096, 8192)


def _percentile(v: float) -> bool:
    return 0.5 < v <= 1


def activation_params(obj: Mapping, path: str, issues: Issues) -> ActivationQuantParams:
    """Validated activation params; IFMR/HFMG defaults fill keys left out."""
    f.check_keys(obj, path, ACT_KEYS, issues)
    algo = f.get_choice(obj, "act_algo", path, issues, "ifmr", ("ifmr", "hfmg"))
    foreign = HFMG_KEYS if algo == "ifmr" else IFMR_KEYS
    for key in foreign:
        if key in obj:
            issues.note(join(path, key), f"is not an {algo} key (IFMR and HFMG keys cannot mix)")
    bits = f.get_choice(obj, "num_bits", path, issues, 8, ACT_BITS)
    asym = f.get_choice(obj, "asymmetric", path, issues, None, (True, False, None))
    if algo == "hfmg":
        bins = f.get_choice(obj, "num_of_bins", path, issues, HFMG_DEFAULT_BINS, HFMG_BINS)
        return ActivationQuantParams(
            bits, "hfmg", None, None, None, None, num_of_bins=bins, asymmetric=asym
        )
    d = IFMR_DEFAULTS
    params = ActivationQuantParams(
        num_bits=bits,
        act_algo="ifmr",
        max_percentile=f.get_float(
            obj, "max_percentile", path, issues, d["max_percentile"], _percentile, "(0.5, 1]"
        ),
        min_percentile=f.get_float(
            obj, "min_percentile", path, issues, d["min_percentile"], _percentile, "(0.5, 1]"
        ),
        search_range=_range(
            obj,
            "search_range",
            path,
            issues,
            d["search_range"],
            _ifmr_range,
            "[start, end] with 0 < start < end",
        ),
        search_step=f.get_float(
            obj, "search_step", path, issues, d["search_step"], lambda v: v > 0, "a number > 0"
        ),
        asymmetric=asym,
    )
    problem = candidate_problem(params.search_range, params.search_step)
    if problem is not None:
        issues.note(join(path, "search_step"), f"got {params.search_step!r}: {problem}")
    return params


def _ifmr_range(start: float, end: float) -> bool:
    return 0 < start < end


def _ada_range(start: float, end: float) -> bool:
    return start > end > 0


def _range(obj, key, path, issues, default, ok, allowed) -> tuple[float, float]:
    value = obj.get(key, MISSING)
    if value is MISSING:
        return default
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(f.is_number(v) for v in value)
        or not ok(*value)
    ):
        issues.add(join(path, key), value, allowed)
        return default
    return (value[0], value[1])


def weight_params(
    obj: Mapping, path: str, layer_type: str | None, issues: Issues
) -> WeightQuantParams:
    """Validated weight params; channel_wise defaults by layer type (required if type unknown)."""
    f.check_keys(obj, path, WEIGHT_KEYS, issues)
    algo = f.get_choice(
        obj, "wts_algo", path, issues, "arq_quantize", ("arq_quantize", "ada_quantize")
    )
    if algo == "ada_quantize" and has_weights(layer_type) is False:
        issues.add(
            join(path, "wts_algo"), algo, f"arq_quantize ({layer_type} has no weight to round)"
        )
    bits = f.get_choice(obj, "num_bits", path, issues, 8, weight_bits_allowed(layer_type))
    default_cw = MISSING if layer_type is None else default_channel_wise(layer_type)
    channel_wise = f.get_bool(obj, "channel_wise", path, issues, default_cw)
    if channel_wise and layer_type is not None and layer_type not in CHANNEL_WISE_TYPES:
        issues.add(join(path, "channel_wise"), True, f"false for {layer_type} layers")
    if algo != "ada_quantize":
        for key in ADA_DEFAULTS:
            if key in obj:
                issues.note(join(path, key), 'only valid with wts_algo "ada_quantize"')
        return WeightQuantParams(bits, algo, channel_wise)
    return _ada(obj, path, issues, bits, channel_wise)


def _ada(obj, path, issues, bits, channel_wise) -> WeightQuantParams:
    d = ADA_DEFAULTS
    return WeightQuantParams(
        num_bits=bits,
        wts_algo="ada_quantize",
        channel_wise=channel_wise,
        num_iteration=f.get_int(
            obj, "num_iteration", path, issues, d["num_iteration"], lambda v: v > 0, "integer > 0"
        ),
        reg_param=f.get_float(
            obj, "reg_param", path, issues, d["reg_param"], lambda v: v > 0, "a number > 0"
        ),
        beta_range=_range(
            obj,
            "beta_range",
            path,
            issues,
            d["beta_range"],
            _ada_range,
            "[start, end] with start > end > 0",
        ),
        warm_start=f.get_float(
            obj, "warm_start", path, issues, d["warm_start"], lambda v: 0 < v < 1, "(0, 1)"
        ),
    )
