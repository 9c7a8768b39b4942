"""16-bit activations (AMCT's A16W8) in PTQ configs: accepted, refused where senseless, kept.

``.cfg``: ``dst_type: INT16`` on ``ifmr_quantize``/``hfmg_quantize`` through
``override_layer_configs``, ``override_layer_types`` or ``common_config`` gives
``activation_quant_params.num_bits: 16`` on exactly those layers. JSON: ``num_bits`` 8 or 16.
Refused: 16 bits with 4/6/7-bit weights (no A16W4/W6/W7) and under ``FORCE_FP16_QUANT``, every
violation in one ConfigError naming the key. ``create_quant_config`` writes 16 and reads it back.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError
from qdqforge.front.config import QuantLayer, build_quant_config, dump_json, load_quant_config
from qdqforge.front.config.ptq_load import quant_config_from_dict
from qdqforge.front.proto.text import parse_text

LAYERS = [
    QuantLayer("conv1", "Conv2d"),
    QuantLayer("conv2", "Conv2d"),
    QuantLayer("fc", "Linear"),
    QuantLayer("head", "Linear"),
]
ALL_INT8 = {layer.name: 8 for layer in LAYERS}


def build(text: str):
    return build_quant_config(parse_text(text, "AMCTConfig", ConfigError, "t.cfg"), LAYERS, "t.cfg")


def bits(config) -> dict[str, int]:
    return {layer.name: layer.activation_quant_params.num_bits for layer in config.layers}


def errors_of(call) -> list[str]:
    with pytest.raises(ConfigError) as info:
        call()
    return info.value.errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'override_layer_configs { layer_name: "fc" calibration_config { '
            "arq_quantize { channel_wise: false } ifmr_quantize { dst_type: INT16 } } }",
            {"conv1": 8, "conv2": 8, "fc": 16, "head": 8},
        ),
        (
            'override_layer_types { layer_type: "Linear" calibration_config { '
            "hfmg_quantize { num_of_bins: 1024 dst_type: INT16 } } }",
            {"conv1": 8, "conv2": 8, "fc": 16, "head": 16},
        ),
        (
            "common_config { ifmr_quantize { dst_type: INT16 } }",
            {"conv1": 16, "conv2": 16, "fc": 16, "head": 16},
        ),
        ("common_config { ifmr_quantize { dst_type: INT8 } }", ALL_INT8),
    ],
    ids=["layer", "type-hfmg", "common", "int8"],
)
def test_cfg_dst_type_int16_reaches_exactly_those_layers(text, expected):
    config = build(text)
    assert bits(config) == expected
    if "hfmg" in text:
        assert config.layer("fc").activation_quant_params.act_algo == "hfmg"
        assert config.layer("fc").activation_quant_params.num_of_bins == 1024


def test_json_num_bits_16_is_accepted_for_ifmr_and_hfmg():
    tree = {
        "version": 1,
        "conv1": {"activation_quant_params": {"num_bits": 16}},
        "fc": {"activation_quant_params": {"num_bits": 16, "act_algo": "hfmg"}},
    }
    config = quant_config_from_dict(tree, "a.json", LAYERS)
    assert bits(config) == {"conv1": 16, "fc": 16}
    assert config.layer("fc").activation_quant_params.act_algo == "hfmg"


def test_json_refusals_are_listed_together_with_their_keys():
    tree = {
        "version": 1,
        "fakequant_precision_mode": "FORCE_FP16_QUANT",
        "conv1": {"activation_quant_params": {"num_bits": 12}},
        "conv2": {
            "activation_quant_params": {"num_bits": 16},
            "weight_quant_params": {"num_bits": 4, "channel_wise": True},
        },
        "fc": {"activation_quant_params": {"num_bits": 16}},
    }
    found = errors_of(lambda: quant_config_from_dict(tree, "a.json", LAYERS))
    assert "conv1.activation_quant_params.num_bits: got 12; allowed: 8 | 16" in found
    a16w4 = "conv2.activation_quant_params.num_bits: got 16; allowed: 8 with 4-bit weights"
    assert any(e.startswith(a16w4) for e in found), found
    fp16 = "fc.activation_quant_params.num_bits: got 16; allowed: 8 under fakequant_precision_mode"
    assert any(e.startswith(fp16) for e in found), found
    assert len(found) == 4  # conv2 breaks both rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'override_layer_configs { layer_name: "conv1" calibration_config { '
            "arq_quantize { quant_bits: 6 } ifmr_quantize { dst_type: INT16 } } }",
            "override_layer_configs[conv1].calibration_config.ifmr_quantize.dst_type: got "
            "'INT16'; allowed: INT8 with 6-bit weights",
        ),
        (
            "fakequant_precision_mode: FORCE_FP16_QUANT override_layer_types { layer_type: "
            '"Linear" calibration_config { hfmg_quantize { dst_type: INT16 } } }',
            "override_layer_types[Linear].calibration_config.hfmg_quantize.dst_type: got 'INT16';"
            " allowed: INT8 under fakequant_precision_mode FORCE_FP16_QUANT",
        ),
    ],
    ids=["a16w6", "fp16-mode"],
)
def test_cfg_refusals_name_the_dst_type_field(text, expected):
    found = errors_of(lambda: build(text))
    assert any(e.startswith(expected) for e in found), found


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_create_quant_config_round_trips_int16(tmp_path):
    definition, out = tmp_path / "a16.cfg", tmp_path / "config.json"
    definition.write_text(
        'override_layer_configs { layer_name: "fc2" calibration_config {\n'
        "  arq_quantize { channel_wise: false } ifmr_quantize { dst_type: INT16 } } }\n"
    )
    model, x = TwoLayers(), torch.randn(2, 6)
    qdqforge.create_quant_config(str(out), model, x, config_defination=str(definition))
    tree = json.loads(out.read_text())
    assert tree["fc2"]["activation_quant_params"]["num_bits"] == 16
    assert tree["fc1"]["activation_quant_params"]["num_bits"] == 8
    config = load_quant_config(out)
    assert bits(config) == {"fc1": 8, "fc2": 16}
    assert dump_json(config.to_dict()) == out.read_text()  # JSON -> config -> JSON: same text
