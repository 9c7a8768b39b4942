"""QAT .cfg (AMCTRetrainConfig): per-group priority, skips, errors, golden sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from qdqforge.errors import ConfigError
from qdqforge.front.config import QuantLayer, build_retrain_config, read_cfg
from qdqforge.front.proto.text import parse_text

GOLDEN = Path(__file__).parent / "golden"
LAYERS = [
    QuantLayer("conv1", "Conv2d"),
    QuantLayer("conv2", "Conv2d"),
    QuantLayer("pool", "AvgPool2d"),
    QuantLayer("fc", "Linear"),
    QuantLayer("attn.matmul_0", "MatMul"),
]
QAT_NAMES = ["conv1", "conv2", "fc", "attn.matmul_0"]
GLOBAL = """
retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 4 clip_min: -2 } } }
retrain_weight_quant_config { ulq_retrain { channel_wise: true } }
"""


def build(text: str):
    cfg = parse_text(text, "AMCTRetrainConfig", ConfigError, "q.cfg")
    return build_retrain_config(cfg, LAYERS, "q.cfg")


def changed(before, after) -> set[str]:
    return {name for name in QAT_NAMES if before.layer(name) != after.layer(name)}


def test_defaults_list_only_qat_types():
    config = build("")
    assert config.layer_names == tuple(QAT_NAMES)  # AvgPool2d is not retrainable
    assert [layer.retrain_enable for layer in config.layers] == [True, True, True, False]
    conv = config.layer("conv1")
    assert conv.retrain_data_config.to_dict() == {"algo": "ulq_quantize", "dst_type": "INT8"}
    assert conv.retrain_weight_config.to_dict() == {
        "algo": "arq_retrain",
        "channel_wise": True,
        "dst_type": "INT8",
    }
    assert config.layer("fc").retrain_weight_config.channel_wise is False
    assert config.layer("attn.matmul_0").retrain_weight_config is None


def test_global_settings_reach_every_layer_within_type_rules():
    before, after = build(""), build(GLOBAL)
    assert changed(before, after) == set(QAT_NAMES)
    data = after.layer("fc").retrain_data_config
    assert (data.clip_max, data.clip_min) == (4.0, -2.0)
    assert after.layer("conv1").retrain_weight_config.algo == "ulq_retrain"
    assert after.layer("fc").retrain_weight_config.channel_wise is False


def test_type_override_changes_only_that_type_and_only_its_groups():
    text = (
        GLOBAL
        + """override_layer_types { layer_type: "Linear"
        retrain_weight_quant_config { arq_retrain { dst_type: INT4 } } }"""
    )
    before, after = build(GLOBAL), build(text)
    assert changed(before, after) == {"fc"}
    fc = after.layer("fc")
    assert (fc.retrain_weight_config.algo, fc.retrain_weight_config.dst_type) == (
        "arq_retrain",
        "INT4",
    )
    assert fc.retrain_data_config.clip_max == 4.0  # data group still from the global setting


def test_layer_override_wins_over_type_override():
    text = (
        GLOBAL
        + """
      override_layer_types { layer_type: "Conv2d"
        retrain_data_quant_config { ulq_quantize { fixed_min: true } } }
      override_layer_configs { layer_name: "conv2"
        retrain_data_quant_config { ulq_quantize { fixed_min: false } } }"""
    )
    after = build(text)
    assert after.layer("conv1").retrain_data_config.fixed_min is True
    assert after.layer("conv2").retrain_data_config.fixed_min is False
    assert after.layer("conv2").retrain_data_config.clip_max is None  # group replaced whole
    assert after.layer("conv2").retrain_weight_config.algo == "ulq_retrain"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('skip_layers: "conv1"', {"conv1"}),
        ('quant_skip_layers: "fc"', {"fc"}),
        ('skip_layer_types: "Conv2d"', {"conv1", "conv2"}),
        ('quant_skip_types: "Linear"', {"fc"}),
    ],
    ids=["skip_layers", "quant_skip_layers", "skip_layer_types", "quant_skip_types"],
)
def test_skips_disable_exactly_the_named_layers(text, expected):
    before, after = build(""), build(text)
    assert changed(before, after) == expected
    assert not any(after.layer(name).retrain_enable for name in expected)


def test_matmul_enabled_by_override():
    after = build('override_layer_types { layer_type: "MatMul" }')
    assert after.layer("attn.matmul_0").retrain_enable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retrain_data_quant_config { ulq_quantize { dst_type: INT4 } }", "dst_type: got 'INT4'"),
        (
            "retrain_data_quant_config { ulq_quantize "
            "{ clip_max_min { clip_max: -1 clip_min: 1 } } }",
            "clip_max_min.clip_max: got -1.0",
        ),
        (
            "retrain_data_quant_config { ulq_quantize "
            "{ clip_max_min { clip_max: 1 clip_min: 1 } } }",
            "clip_max_min.clip_min: got 1.0; allowed: < 0",
        ),
        ("retrain_weight_quant_config { arq_retrain { dst_type: INT16 } }", "allowed: INT8 | INT4"),
        (
            'override_layer_types { layer_type: "Linear" '
            "retrain_weight_quant_config { arq_retrain { channel_wise: true } } }",
            "override_layer_types[Linear].retrain_weight_quant_config.arq_retrain.channel_wise",
        ),
        ('override_layer_types { layer_type: "AvgPool2d" }', "unknown layer type 'AvgPool2d'"),
        ('override_layer_configs { layer_name: "pool" }', "unknown layer 'pool'"),
        ('skip_layers: "conv3"', "unknown layer 'conv3'; did you mean"),
        ("batch_num: 0", "batch_num: got 0"),
        (
            "prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 } } }",
            "pruning is not supported",
        ),
    ],
)
def test_retrain_cfg_errors_name_the_field(text, expected):
    with pytest.raises(ConfigError) as info:
        build(text)
    assert any(expected in e for e in info.value.errors), info.value.errors


def test_golden_amct_retrain_cfg():
    cfg = read_cfg(GOLDEN / "amct_qat.cfg", "AMCTRetrainConfig")
    config = build_retrain_config(cfg, LAYERS, "amct_qat.cfg")
    assert config.batch_num == 2
    assert config.layer("conv1").retrain_weight_config.channel_wise is True
    assert config.layer("fc").retrain_weight_config.channel_wise is False
