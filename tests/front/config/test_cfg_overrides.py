"""PTQ .cfg (AMCTConfig): each override kind changes exactly the intended layers; errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from qdqforge.errors import ConfigError
from qdqforge.front.config import QuantLayer, build_quant_config, read_cfg
from qdqforge.front.proto.text import parse_text

GOLDEN = Path(__file__).parent / "golden"
LAYERS = [
    QuantLayer("conv1", "Conv2d"),
    QuantLayer("layer1.0.conv1", "Conv2d"),
    QuantLayer("layer1.0.conv2", "Conv1d"),
    QuantLayer("pool", "AvgPool2d"),
    QuantLayer("fc", "Linear"),
    QuantLayer("head", "Linear"),
    QuantLayer("attn.matmul_0", "MatMul"),
    QuantLayer("tied", "Linear", sharing="called 2 times"),
]
NAMES = [layer.name for layer in LAYERS]
COMMON = """
common_config {
  arq_quantize { channel_wise: true }
  ifmr_quantize { search_step: 0.02 max_percentile: 0.9999 asymmetric: false }
  dmq_balancer { migration_strength: 0.3 }
}
"""


def build(text: str, layers=LAYERS):
    return build_quant_config(parse_text(text, "AMCTConfig", ConfigError, "t.cfg"), layers, "t.cfg")


def changed(before, after) -> set[str]:
    return {name for name in NAMES if before.layer(name) != after.layer(name)}


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build(text)
    return info.value.errors


def test_defaults_without_overrides():
    config = build("")
    assert config.layer_names == tuple(NAMES)
    assert (config.batch_num, config.activation_offset, config.do_fusion) == (1, True, True)
    enabled = {layer.name for layer in config.layers if layer.quant_enable}
    assert enabled == {"conv1", "layer1.0.conv1", "layer1.0.conv2", "pool", "fc", "head"}
    assert config.layer("conv1").weight_quant_params.channel_wise is True
    assert config.layer("fc").weight_quant_params.channel_wise is False
    assert config.layer("attn.matmul_0").weight_quant_params is None
    assert all(layer.dmq_balancer_param is None for layer in config.layers)
    act = config.layer("fc").activation_quant_params
    assert (act.act_algo, act.search_range, act.asymmetric) == ("ifmr", (0.7, 1.3), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('skip_layers: "fc"', {"fc"}),
        ('skip_layers: "conv1" skip_layers: "pool"', {"conv1", "pool"}),
        ('skip_layer_types: "Linear"', {"fc", "head"}),
        ('skip_layer_types: "Conv1d"', {"layer1.0.conv2"}),
    ],
    ids=["one-layer", "two-layers", "type-linear", "type-conv1d"],
)
def test_skips_disable_exactly_the_named_layers(text, expected):
    before, after = build(""), build(text)
    assert changed(before, after) == expected
    assert not any(after.layer(name).quant_enable for name in expected)


def test_common_config_reaches_every_layer_within_type_rules():
    before, after = build(""), build(COMMON)
    assert changed(before, after) == set(NAMES)
    for name in ("conv1", "fc", "pool", "attn.matmul_0"):
        act = after.layer(name).activation_quant_params
        assert (act.search_step, act.max_percentile, act.asymmetric) == (0.02, 0.9999, False)
    assert after.layer("fc").weight_quant_params.channel_wise is False  # never on for Linear
    assert after.layer("conv1").dmq_balancer_param == 0.3
    assert after.layer("pool").dmq_balancer_param is None  # no weights, no DMQ
    assert after.layer("attn.matmul_0").dmq_balancer_param is None
    assert not after.layer("attn.matmul_0").quant_enable


def test_override_layer_types_changes_only_that_type():
    text = (
        COMMON
        + """override_layer_types {
      layer_type: "Linear"
      calibration_config { hfmg_quantize { num_of_bins: 2048 } }
    }"""
    )
    before, after = build(COMMON), build(text)
    assert changed(before, after) == {"fc", "head", "tied"}
    fc = after.layer("fc")
    assert fc.activation_quant_params.num_of_bins == 2048
    assert fc.activation_quant_params.act_algo == "hfmg"
    # the winning config applies whole: groups it leaves out take built-in defaults
    assert fc.dmq_balancer_param is None
    assert not after.layer("tied").quant_enable  # weight sharing wins over any override


def test_override_layer_configs_changes_only_that_layer_and_wins():
    text = (
        COMMON
        + """
    override_layer_types { layer_type: "Conv2d"
      calibration_config { ifmr_quantize { search_step: 0.05 } } }
    override_layer_configs { layer_name: "layer1.0.conv1"
      calibration_config { arq_quantize { channel_wise: false quant_bits: 6 }
                           dmq_balancer { migration_strength: 0.8 } } }
    """
    )
    by_type = build(COMMON + text.split("override_layer_configs")[0].split(COMMON)[1])
    after = build(text)
    assert changed(by_type, after) == {"layer1.0.conv1"}
    conv = after.layer("layer1.0.conv1")
    assert conv.weight_quant_params.channel_wise is False
    assert conv.weight_quant_params.num_bits == 6
    assert conv.dmq_balancer_param == 0.8
    assert conv.activation_quant_params.search_step == 0.01  # not from the type override
    assert after.layer("conv1").activation_quant_params.search_step == 0.05
    assert after.layer("layer1.0.conv2").activation_quant_params.search_step == 0.02


@pytest.mark.parametrize(
    "text",
    [
        'override_layer_types { layer_type: "MatMul" calibration_config {} }',
        'override_layer_configs { layer_name: "attn.matmul_0" calibration_config {} }',
    ],
    ids=["by-type", "by-name"],
)
def test_matmul_layers_are_enabled_only_on_request(text):
    before, after = build(""), build(text)
    assert changed(before, after) == {"attn.matmul_0"}
    assert after.layer("attn.matmul_0").quant_enable


def test_globals_and_common_quant_bits():
    text = """batch_num: 4 activation_offset: false do_fusion: false
      skip_fusion_layers: "conv1" fakequant_precision_mode: FORCE_FP16_QUANT
      common_config { arq_quantize { quant_bits: 7 } }"""
    config = build(text)
    assert (config.batch_num, config.activation_offset, config.do_fusion) == (4, False, False)
    assert config.skip_fusion_layers == ("conv1",)
    assert config.fakequant_precision_mode == "FORCE_FP16_QUANT"
    assert config.layer("conv1").weight_quant_params.num_bits == 7
    assert config.layer("fc").weight_quant_params.num_bits == 8  # 6/7 bits: Conv2d only
    assert config.layer("layer1.0.conv2").weight_quant_params.num_bits == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('skip_layers: "fcc"', "skip_layers[0]: unknown layer 'fcc'; did you mean 'fc'"),
        ('skip_layers: "fc" skip_layers: "fc"', "skip_layers[1]: got 'fc'; allowed: each layer"),
        ('skip_layer_types: "Linaer"', "unknown layer type 'Linaer'; did you mean 'Linear'"),
        ('skip_fusion_layers: "fc"', "skip_fusion_layers[0]: unknown conv layer 'fc'"),
        ("batch_num: 0", "batch_num: got 0; allowed: integer > 0"),
        (
            'override_layer_types { layer_type: "BatchNorm2d" calibration_config {} }',
            "override_layer_types[0]: unknown layer type 'BatchNorm2d'",
        ),
        (
            'override_layer_configs { layer_name: "conv9" calibration_config {} }',
            "override_layer_configs[0]: unknown layer 'conv9'",
        ),
        (
            'override_layer_types { layer_type: "Linear" calibration_config '
            "{ arq_quantize { channel_wise: true } } }",
            "override_layer_types[Linear].calibration_config.arq_quantize.channel_wise: got True",
        ),
        (
            'override_layer_types { layer_type: "Linear" calibration_config '
            "{ arq_quantize { quant_bits: 6 } } }",
            "arq_quantize.quant_bits: got 6; allowed: 8 | 4 for Linear",
        ),
        (
            'override_layer_types { layer_type: "AvgPool2d" calibration_config '
            "{ dmq_balancer {} } }",
            "DMQ needs a layer with weights, not AvgPool2d",
        ),
        (
            "common_config { dmq_balancer { migration_strength: 0.9 } }",
            "common_config.dmq_balancer.migration_strength: got 0.9; allowed: [0.2, 0.8]",
        ),
        (
            "common_config { ifmr_quantize { search_range_start: 1.3 search_range_end: 0.7 } }",
            "search_range_start/end: got [1.3, 0.7]; allowed: 0 < start < end",
        ),
        ("common_config { ifmr_quantize { search_step: 0 } }", "search_step: got 0.0"),
        ("common_config { ifmr_quantize { max_percentile: 0.4 } }", "max_percentile: got 0.4"),
        (
            "common_config { arq_quantize { quant_bits: 6 } ifmr_quantize { dst_type: INT16 } }",
            "common_config.ifmr_quantize.dst_type: got 'INT16'; allowed: INT8 with 6-bit weights",
        ),
        ("common_config { hfmg_quantize { num_of_bins: 1000 } }", "num_of_bins: got 1000"),
        ("common_config { ada_quantize { warm_start: 1.5 } }", "warm_start: got 1.5"),
    ],
)
def test_cfg_errors_name_the_field(text, expected):
    found = errors(text)
    assert any(expected in e for e in found), found


def test_all_cfg_errors_are_reported_together():
    text = """batch_num: 0 skip_layers: "nope"
      common_config { dmq_balancer { migration_strength: 0.1 } ifmr_quantize { search_step: -1 } }
      override_layer_configs { layer_name: "fc" calibration_config {
        arq_quantize { channel_wise: true } } }"""
    assert len(errors(text)) == 5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "batch_num: 2\ncommon_config {\n  ifmr_quantize { search_stp: 0.1 }\n}",
            r"t.cfg:3:.*search_step",
        ),
        ("batch_num: 2\nskip_layers: fc\n", r"t.cfg:2:"),
        ("batch_num: 2\ncommon_config {", r"t.cfg:2:.*Expected"),
        ('override_layer_configs { layer_name: "fc" }', r"calibration_config"),
    ],
    ids=["unknown-field", "unquoted-string", "truncated", "missing-required"],
)
def test_cfg_syntax_errors_name_the_line(text, match):
    with pytest.raises(ConfigError, match=match):
        build(text)


def test_golden_amct_cfg(tmp_path):
    cfg = read_cfg(GOLDEN / "amct_ptq.cfg", "AMCTConfig")
    config = build_quant_config(cfg, LAYERS, "amct_ptq.cfg")
    assert config.batch_num == 2
    assert not config.layer("fc").quant_enable
    assert config.layer("head").activation_quant_params.act_algo == "hfmg"
    assert config.layer("head").weight_quant_params.channel_wise is False
    assert config.layer("head").dmq_balancer_param is None  # override applies whole
    assert config.layer("conv1").dmq_balancer_param == 0.5
    assert config.layer("conv1").activation_quant_params.asymmetric is True
    with pytest.raises(ConfigError, match="cannot read config_defination"):
        read_cfg(tmp_path / "missing.cfg", "AMCTConfig")
