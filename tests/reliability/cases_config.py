"""Catalogue rows: JSON configs (malformed text, wrong types and ranges of every key, names).

Key rows edit one value of the valid PTQ (or QAT) config and load it against the model's layers,
exactly as ``quantize_model`` (``create_quant_retrain_model``) does after exporting; a few rows go
through the public call itself. The message must name the key path.
"""

from __future__ import annotations

from qdqforge.errors import ConfigError
from qdqforge.front.config import load_quant_config, load_retrain_config
from tests.reliability.catalogue import Case
from tests.reliability.world import deep


def _ptq(w, path):
    return load_quant_config(path, w.layers)


def _qat(w, path):
    return load_retrain_config(path, w.layers)


def _key_case(path: str, value, match: str, qat: bool = False, extra=None) -> Case:
    def call(w):
        def edit(tree):
            if extra:
                extra(tree)
            deep(tree, path, value)

        edited = w.json_with(edit, w.qat_config if qat else w.config)
        return (_qat if qat else _ptq)(w, edited)

    kind = "QAT" if qat else "PTQ"
    return Case(
        f"{kind.lower()}:{path}={value!r}",
        f"{kind} config key {path} set to {value!r}",
        call,
        ConfigError,
        match,
    )


def _hfmg(tree):
    tree["fc"]["activation_quant_params"] = {"act_algo": "hfmg"}


def _ada(tree):
    tree["conv"]["weight_quant_params"]["wts_algo"] = "ada_quantize"


ACT, WTS = "activation_quant_params", "weight_quant_params"
PTQ_KEYS = [
    ("version", "1", "version: got '1'"),
    ("batch_num", 0, "batch_num: got 0; allowed: integer > 0"),
    ("batch_num", 1.5, "batch_num: got 1.5"),
    ("batch_num", True, "batch_num: got True"),
    ("activation_offset", "yes", "activation_offset: got 'yes'; allowed: true or false"),
    ("do_fusion", 1, "do_fusion: got 1"),
    ("skip_fusion_layers", "conv", "skip_fusion_layers"),
    ("skip_fusion_layers", ["fc"], "skip_fusion_layers: got 'fc'"),
    ("fakequant_precision_mode", "FP8", "fakequant_precision_mode: got 'FP8'"),
    ("conv/quant_enable", "true", "conv.quant_enable: got 'true'"),
    ("conv/dmq_balancer_param", 0.9, "conv.dmq_balancer_param: got 0.9; allowed: [0.2, 0.8]"),
    ("conv/dmq_balancer_param", "0.5", "conv.dmq_balancer_param: got '0.5'"),
    (f"conv/{ACT}", [8], f"conv.{ACT}: got [8]; allowed: a JSON object"),
    (f"conv/{ACT}/num_bits", 4, f"conv.{ACT}.num_bits: got 4"),
    (f"conv/{ACT}/act_algo", "minmax", f"conv.{ACT}.act_algo: got 'minmax'"),
    (f"conv/{ACT}/max_percentile", 0.3, f"conv.{ACT}.max_percentile: got 0.3"),
    (f"conv/{ACT}/min_percentile", 2, f"conv.{ACT}.min_percentile: got 2"),
    (f"conv/{ACT}/search_range", [1.3, 0.7], f"conv.{ACT}.search_range: got [1.3, 0.7]"),
    (f"conv/{ACT}/search_range", [0.7], f"conv.{ACT}.search_range: got [0.7]"),
    (f"conv/{ACT}/search_step", 0, f"conv.{ACT}.search_step: got 0"),
    (f"conv/{ACT}/search_step", 1e-7, f"conv.{ACT}.search_step: got 1e-07: 6e+06 IFMR candidates"),
    (f"conv/{ACT}/search_step", 5e-324, f"conv.{ACT}.search_step: got 5e-324: inf IFMR candidates"),
    (f"conv/{ACT}/search_range", [0.7, 1e15], "1e+17 IFMR candidates over [0.7, 1e+15]"),
    (f"conv/{ACT}/asymmetric", "no", f"conv.{ACT}.asymmetric: got 'no'"),
    (f"conv/{WTS}/num_bits", 3, f"conv.{WTS}.num_bits: got 3"),
    (f"conv/{WTS}/wts_algo", "nuq", f"conv.{WTS}.wts_algo: got 'nuq'"),
    (f"conv/{WTS}/channel_wise", "false", f"conv.{WTS}.channel_wise: got 'false'"),
    ("conv/quant_enabled", True, "unknown key 'quant_enabled'; did you mean 'quant_enable'"),
    ("batch_nun", 2, "unknown key 'batch_nun'; did you mean 'batch_num'"),
    ("conv9", {"quant_enable": True}, "unknown layer 'conv9'; did you mean 'conv'"),
]
EXTRA_KEYS = [
    (f"fc/{ACT}/num_of_bins", 1000, f"fc.{ACT}.num_of_bins: got 1000", _hfmg),
    (f"fc/{ACT}/max_percentile", 0.9, f"fc.{ACT}.max_percentile: is not an hfmg key", _hfmg),
    (f"conv/{WTS}/num_iteration", 0, f"conv.{WTS}.num_iteration: got 0", _ada),
    (f"conv/{WTS}/beta_range", [2, 20], f"conv.{WTS}.beta_range: got [2, 20]", _ada),
    (f"conv/{WTS}/warm_start", 1.5, f"conv.{WTS}.warm_start: got 1.5", _ada),
    (f"conv/{ACT}/num_of_bins", 2048, f"conv.{ACT}.num_of_bins: is not an ifmr key", None),
]
DATA, RW = "retrain_data_config", "retrain_weight_config"
QAT_KEYS = [
    ("batch_num", -3, "batch_num: got -3"),
    ("conv/retrain_enable", "yes", "conv.retrain_enable: got 'yes'"),
    (f"conv/{DATA}/algo", "lsq", f"conv.{DATA}.algo: got 'lsq'"),
    (f"conv/{DATA}/clip_max", -1.0, f"conv.{DATA}.clip_max: got -1.0"),
    (f"conv/{DATA}/fixed_min", "x", f"conv.{DATA}.fixed_min: got 'x'"),
    (f"conv/{DATA}/dst_type", "INT3", f"conv.{DATA}.dst_type: got 'INT3'"),
    (f"conv/{RW}/algo", "arq", f"conv.{RW}.algo: got 'arq'"),
    (f"conv/{RW}/channel_wise", 2, f"conv.{RW}.channel_wise: got 2"),
    (f"fc/{RW}/channel_wise", True, f"fc.{RW}.channel_wise: got True; allowed: false for Linear"),
    ("fc2", {"retrain_enable": True}, "unknown layer 'fc2'; did you mean 'fc'"),
]


def _malformed(name: str, text: str, match: str, what: str) -> Case:
    return Case(name, what, lambda w: _ptq(w, w.write("bad.json", text)), ConfigError, match)


def _duplicate_layer(w):
    text = w.config.read_text()
    body = text[text.index('"conv": {') : text.index('"fc": {')]
    return _ptq(w, w.write("dup.json", text.replace('"fc": {', body + '"fc": {', 1)))


CASES = [
    *(_key_case(p, v, m) for p, v, m in PTQ_KEYS),
    *(_key_case(p, v, m, extra=x) for p, v, m, x in EXTRA_KEYS),
    *(_key_case(p, v, m, qat=True) for p, v, m in QAT_KEYS),
    _malformed("json:truncated", '{"batch_num": 2, "conv": {"quant_', ":1:", "JSON cut short"),
    _malformed("json:trailing-comma", '{"batch_num": 2,}', ":1:17: invalid JSON", "trailing ,"),
    _malformed("json:not-object", "[1, 2]", "must be a JSON object, got list", "a JSON list"),
    _malformed("json:nan", '{"batch_num": NaN}', "NaN is not a valid JSON number", "NaN number"),
    _malformed("json:empty", "", "invalid JSON", "an empty file"),
    Case(
        "json:binary",
        "config file that is not UTF-8",
        lambda w: _ptq(w, w.write("bin.json", b"\xff\xfe{\x00")),
        ConfigError,
        "cannot read config file",
    ),
    Case(
        "json:missing-file",
        "config path that does not exist",
        lambda w: w.quantize(w.tmp / "nope.json"),
        ConfigError,
        "nope.json",
    ),
    Case(
        "json:duplicate-layer",
        "the layer 'conv' written twice in one JSON object",
        _duplicate_layer,
        ConfigError,
        "conv: key appears more than once",
    ),
    Case(
        "json:bad-key-via-quantize_model",
        "batch_num 0 reaching quantize_model",
        lambda w: w.quantize(w.json_with(lambda t: t.update(batch_num=0))),
        ConfigError,
        "batch_num: got 0",
    ),
    Case(
        "json:terminal-escape-in-layer-name",
        "a layer name holding a clear-screen sequence and a newline (printed by the CLI)",
        lambda w: _ptq(w, w.json_with(lambda t: t.update({"\x1b[2Jconv\nALL OK": {}}))),
        ConfigError,
        "  - \\x1b[2Jconv\\nALL OK: unknown layer",
    ),
]
