"""PTQ/QAT JSON configs: golden AMCT files, round-trip identity, every range rule, error lists."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qdqforge.errors import ConfigError
from qdqforge.front.config import (
    QuantConfig,
    QuantLayer,
    RetrainConfig,
    dump_json,
    load_config,
    load_quant_config,
    load_retrain_config,
    parse_quant_config,
    parse_retrain_config,
    quant_config_from_dict,
    retrain_config_from_dict,
    write_json,
)

GOLDEN = Path(__file__).parent / "golden"
LAYERS = [
    QuantLayer("conv", "Conv2d"),
    QuantLayer("fc", "Linear"),
    QuantLayer("pool", "AvgPool2d"),
    QuantLayer("attn.matmul_0", "MatMul"),
    QuantLayer("tied", "Linear", sharing="shares its weight with fc"),
]


def _ptq(**layer) -> dict:
    base = {
        "quant_enable": True,
        "activation_quant_params": {"num_bits": 8, "act_algo": "ifmr"},
        "weight_quant_params": {"num_bits": 8, "wts_algo": "arq_quantize", "channel_wise": True},
    }
    base.update(layer)
    return {"version": 1, "batch_num": 1, "conv": base}


def _errors(tree: dict, layers=None, loader=quant_config_from_dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader(tree, "cfg.json", layers)
    assert str(info.value).startswith("cfg.json: ")
    return info.value.errors


def test_golden_ptq_config_parses():
    config = load_quant_config(GOLDEN / "amct_ptq_config.json")
    assert config.layer_names == ("conv1", "layer1.0.conv1", "fc")
    assert config.batch_num == 2 and config.activation_offset and config.do_fusion
    conv1 = config.layer("conv1")
    assert conv1.dmq_balancer_param == 0.5
    assert conv1.activation_quant_params.search_range == (0.7, 1.3)
    assert conv1.activation_quant_params.asymmetric is False
    assert config.with_offset(conv1) is False
    hfmg = config.layer("layer1.0.conv1").activation_quant_params
    assert (hfmg.act_algo, hfmg.num_of_bins, hfmg.search_step) == ("hfmg", 4096, None)
    fc = config.layer("fc")
    assert not fc.quant_enable and not fc.weight_quant_params.channel_wise
    assert config.with_offset(fc) is True


def test_golden_qat_config_parses():
    config = load_retrain_config(GOLDEN / "amct_qat_config.json")
    conv2 = config.layer("layer1.0.conv2").retrain_data_config
    assert (conv2.clip_max, conv2.clip_min, conv2.fixed_min) == (3.0, -3.0, False)
    assert config.layer("conv1").retrain_data_config.clip_max is None
    assert not config.layer("fc").retrain_enable
    assert config.layer("fc").retrain_weight_config.channel_wise is False


@pytest.mark.parametrize(
    ("name", "loader"),
    [("amct_ptq_config.json", parse_quant_config), ("amct_qat_config.json", parse_retrain_config)],
    ids=["ptq", "qat"],
)
def test_json_round_trip_is_identity(name, loader, tmp_path):
    canonical = dump_json(loader((GOLDEN / name).read_text()).to_dict())
    assert dump_json(loader(canonical).to_dict()) == canonical
    write_json(tmp_path / "c.json", json.loads(canonical))
    assert (tmp_path / "c.json").read_text() == canonical
    assert canonical.startswith('{\n    "version": 1,\n')


@pytest.mark.parametrize(
    ("layer", "path"),
    [
        ({"dmq_balancer_param": 0.9}, "conv.dmq_balancer_param: got 0.9; allowed: [0.2, 0.8]"),
        ({"dmq_balancer_param": 0.1}, "conv.dmq_balancer_param: got 0.1"),
        ({"quant_enable": 1}, "conv.quant_enable: got 1; allowed: true or false"),
        (
            {"activation_quant_params": {"max_percentile": 0.5}},
            "max_percentile: got 0.5; allowed: (0.5, 1]",
        ),
        ({"activation_quant_params": {"min_percentile": 1.01}}, "min_percentile: got 1.01"),
        (
            {"activation_quant_params": {"search_range": [1.3, 0.7]}},
            "search_range: got [1.3, 0.7]; allowed: [start, end] with 0 < start < end",
        ),
        ({"activation_quant_params": {"search_range": [0, 1]}}, "search_range: got [0, 1]"),
        ({"activation_quant_params": {"search_range": [0.7]}}, "search_range: got [0.7]"),
        (
            {"activation_quant_params": {"search_step": 0}},
            "conv.activation_quant_params.search_step: got 0; allowed: a number > 0",
        ),
        (
            {"activation_quant_params": {"act_algo": "hfmg", "num_of_bins": 1000}},
            "num_of_bins: got 1000; allowed: 1024 | 2048 | 4096 | 8192",
        ),
        (
            {"activation_quant_params": {"act_algo": "hfmg", "search_step": 0.01}},
            "search_step: is not an hfmg key",
        ),
        (
            {"activation_quant_params": {"act_algo": "ifmr", "num_of_bins": 4096}},
            "num_of_bins: is not an ifmr key",
        ),
        (
            {"activation_quant_params": {"act_algo": "minmax"}},
            'act_algo: got \'minmax\'; allowed: "ifmr" | "hfmg"',
        ),
        (
            {"activation_quant_params": {"num_bits": 4}},
            "activation_quant_params.num_bits: got 4; allowed: 8 | 16",
        ),
        ({"activation_quant_params": {"asymmetric": "yes"}}, "asymmetric: got 'yes'"),
        (
            {"weight_quant_params": {"num_bits": 5, "channel_wise": True}},
            "weight_quant_params.num_bits: got 5; allowed: 8 | 4 | 6 | 7",
        ),
        ({"weight_quant_params": {"wts_algo": "x", "channel_wise": True}}, "wts_algo: got 'x'"),
        (
            {"weight_quant_params": {"channel_wise": True, "warm_start": 0.2}},
            'warm_start: only valid with wts_algo "ada_quantize"',
        ),
        (
            {
                "weight_quant_params": {
                    "wts_algo": "ada_quantize",
                    "channel_wise": True,
                    "beta_range": [2, 20],
                }
            },
            "beta_range: got [2, 20]",
        ),
        ({"weight_quant_params": {"num_bits": 8}}, "channel_wise: missing; allowed: true or false"),
        (
            {"quant_enabel": True},
            "conv.quant_enabel: unknown key 'quant_enabel'; did you mean 'quant_enable'?",
        ),
        ({"activation_quant_params": {"search_stp": 0.1}}, "did you mean 'search_step'"),
        (
            {"activation_quant_params": 3},
            "conv.activation_quant_params: got 3; allowed: a JSON object",
        ),
    ],
)
def test_each_range_rule_names_path_value_and_allowed(layer, path):
    tree = _ptq()
    tree["conv"].update(layer)
    errors = _errors(tree)
    assert any(path in e for e in errors), errors


@pytest.mark.parametrize(
    ("tree", "layers", "expected"),
    [
        (
            {"fc": {"weight_quant_params": {"channel_wise": True}}},
            LAYERS,
            "fc.weight_quant_params.channel_wise: got True; allowed: false for Linear layers",
        ),
        ({"pool": {"weight_quant_params": {"channel_wise": True}}}, LAYERS, "false for AvgPool2d"),
        (
            {"fc": {"weight_quant_params": {"channel_wise": False, "num_bits": 6}}},
            LAYERS,
            "allowed: 8 | 4",
        ),
        ({"pool": {"dmq_balancer_param": 0.5}}, LAYERS, "DMQ needs a layer with weights"),
        ({"attn.matmul_0": {"weight_quant_params": {}}}, LAYERS, "has no weights"),
        (
            {"tied": {"quant_enable": True}},
            LAYERS,
            "tied.quant_enable: got True; allowed: false (layer shares its weight with fc)",
        ),
        ({"conv2": {}}, LAYERS, "unknown layer 'conv2'; did you mean 'conv'?"),
        (
            {"skip_fusion_layers": ["fc"]},
            LAYERS,
            "skip_fusion_layers: got 'fc'; allowed: names of convolution layers",
        ),
        ({"skip_fusion_layers": ["conv", "conv"]}, LAYERS, "each layer listed once"),
        ({"batch_nun": 2}, None, "batch_nun: unknown key 'batch_nun'; did you mean 'batch_num'?"),
        ({"version": 2}, None, "version: got 2; allowed: 1"),
        ({"batch_num": True}, None, "batch_num: got True; allowed: integer > 0"),
        ({"fakequant_precision_mode": "FP16"}, None, "fakequant_precision_mode: got 'FP16'"),
    ],
)
def test_model_aware_and_global_rules(tree, layers, expected):
    errors = _errors({"version": 1, **tree}, layers)
    assert any(expected in e for e in errors), errors


def test_known_layer_types_fill_defaults():
    config = quant_config_from_dict(
        {"conv": {}, "fc": {}, "pool": {}, "attn.matmul_0": {}}, layers=LAYERS
    )
    assert config.layer("conv").weight_quant_params.channel_wise is True
    assert config.layer("fc").weight_quant_params.channel_wise is False
    assert config.layer("attn.matmul_0").weight_quant_params is None
    assert config.layer("conv").activation_quant_params.search_step == 0.01
    assert config.layer("fc").weight_quant_params.num_bits == 8


def test_every_violation_is_reported_at_once():
    tree = _ptq(dmq_balancer_param=2, quant_enabel=False)
    tree["conv"]["activation_quant_params"].update(search_step=-1, max_percentile=2)
    tree["batch_num"] = 0
    tree["fc"] = {"weight_quant_params": {"channel_wise": True}}
    errors = _errors(tree, LAYERS)
    assert len(errors) == 6, errors
    message = str(ConfigError("x", errors))
    assert message == "x"


def test_duplicate_keys_are_reported_with_their_path():
    text = '{"version": 1, "conv": {"quant_enable": true, "quant_enable": false,\n'
    text += '"activation_quant_params": {"num_bits": 8, "num_bits": 8}}, "version": 1}'
    with pytest.raises(ConfigError) as info:
        parse_quant_config(text, "d.json", LAYERS)
    joined = "\n".join(info.value.errors)
    assert "version: key appears more than once" in joined
    assert "conv.quant_enable: key appears more than once" in joined
    assert "conv.activation_quant_params.num_bits: key appears more than once" in joined


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"version": 1,', r"d.json:1:\d+: invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"version": NaN}', "NaN is not a valid JSON number"),
        ('{"conv": {"dmq_balancer_param": Infinity}}', "Infinity"),
    ],
    ids=["truncated", "array", "nan", "infinity"],
)
def test_bad_json_text(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_quant_config(text, "d.json")


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_ptq(quant_enable="x")))
    with pytest.raises(ConfigError, match=str(path)):
        load_quant_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_quant_config(tmp_path / "missing.json")


QAT_LAYER = {
    "retrain_enable": True,
    "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
    "retrain_weight_config": {"algo": "arq_retrain", "channel_wise": True, "dst_type": "INT8"},
}


@pytest.mark.parametrize(
    ("section", "update", "expected"),
    [
        (
            "retrain_data_config",
            {"clip_max": 0, "clip_min": -1},
            "retrain_data_config.clip_max: got 0; allowed: a number > 0",
        ),
        (
            "retrain_data_config",
            {"clip_max": 1, "clip_min": 0.5},
            "clip_min: got 0.5; allowed: a number < 0",
        ),
        (
            "retrain_data_config",
            {"clip_max": 1},
            "clip_min: missing; allowed: clip_max and clip_min are given together",
        ),
        (
            "retrain_data_config",
            {"dst_type": "INT4"},
            "retrain_data_config.dst_type: got 'INT4'; allowed: \"INT8\"",
        ),
        ("retrain_data_config", {"algo": "lsq"}, "algo: got 'lsq'"),
        ("retrain_data_config", {"fixed_min": 0}, "fixed_min: got 0"),
        ("retrain_weight_config", {"dst_type": "INT16"}, 'allowed: "INT8" | "INT4"'),
        ("retrain_weight_config", {"algo": "ada"}, 'allowed: "arq_retrain" | "ulq_retrain"'),
        ("retrain_weight_config", {"chanel_wise": True}, "did you mean 'channel_wise'?"),
    ],
)
def test_qat_rules(section, update, expected):
    layer = copy.deepcopy(QAT_LAYER)
    layer[section].update(update)
    errors = _errors({"version": 1, "conv": layer}, loader=retrain_config_from_dict)
    assert any(expected in e for e in errors), errors


def test_qat_model_rules_and_int4_weights():
    fc = copy.deepcopy(QAT_LAYER)
    errors = _errors({"fc": fc, "pool": {}, "tied": {}}, LAYERS, retrain_config_from_dict)
    assert any("fc.retrain_weight_config.channel_wise" in e for e in errors)
    assert any("unknown layer 'pool'" in e for e in errors)  # AvgPool2d is not a QAT type
    assert any("tied.retrain_enable: got True" in e for e in errors)
    layer = copy.deepcopy(QAT_LAYER)
    layer["retrain_weight_config"]["dst_type"] = "INT4"
    config = retrain_config_from_dict({"conv": layer}, layers=LAYERS)
    assert config.layer("conv").retrain_weight_config.dst_type == "INT4"


def test_load_config_tells_ptq_from_qat():
    assert isinstance(load_config(GOLDEN / "amct_ptq_config.json"), QuantConfig)
    assert isinstance(load_config(GOLDEN / "amct_qat_config.json"), RetrainConfig)
    layers = [QuantLayer("conv1", "Conv2d")]
    with pytest.raises(ConfigError, match="unknown layer 'fc'"):
        load_config(GOLDEN / "amct_qat_config.json", layers=layers)
