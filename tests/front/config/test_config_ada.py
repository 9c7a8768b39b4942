"""``ada_quantize`` in PTQ configs: where it applies, and where a layer type has nothing to round.

JSON: ``wts_algo: "ada_quantize"`` on an AvgPool2d layer is a ConfigError naming the key. ``.cfg``:
an override (by name or by type) putting ``ada_quantize`` on AvgPool2d is one too; from
``common_config`` (which spans types) it reaches the weighted layers only, AvgPool2d keeps ARQ.
"""

from __future__ import annotations

import pytest

from qdqforge.errors import ConfigError
from qdqforge.front.config import QuantLayer, build_quant_config
from qdqforge.front.config.ptq_load import quant_config_from_dict
from qdqforge.front.proto.text import parse_text

LAYERS = [QuantLayer("conv", "Conv2d"), QuantLayer("pool", "AvgPool2d"), QuantLayer("fc", "Linear")]
ADA = "ada_quantize { num_iteration: 50 }"


def build(text: str):
    return build_quant_config(parse_text(text, "AMCTConfig", ConfigError, "t.cfg"), LAYERS, "t.cfg")


def algos(config) -> dict[str, str]:
    return {layer.name: layer.weight_quant_params.wts_algo for layer in config.layers}


def test_common_config_reaches_weighted_layers_only():
    config = build(f"common_config {{ {ADA} }}")
    assert algos(config) == {"conv": "ada_quantize", "pool": "arq_quantize", "fc": "ada_quantize"}
    assert config.layer("conv").weight_quant_params.num_iteration == 50
    assert config.layer("fc").weight_quant_params.channel_wise is False


@pytest.mark.parametrize(
    "text",
    [
        f'override_layer_configs {{ layer_name: "pool" calibration_config {{ {ADA} }} }}',
        f'override_layer_types {{ layer_type: "AvgPool2d" calibration_config {{ {ADA} }} }}',
    ],
    ids=["by_name", "by_type"],
)
def test_cfg_override_on_avgpool_is_refused(text):
    with pytest.raises(
        ConfigError, match=r"ada_quantize: AdaRound needs a layer with weights, not AvgPool2d"
    ):
        build(text)


def test_json_ada_on_avgpool_is_refused():
    good = build(f"common_config {{ {ADA} }}").to_dict()
    good["pool"]["weight_quant_params"] = good["conv"]["weight_quant_params"] | {
        "channel_wise": False
    }
    with pytest.raises(
        ConfigError, match=r"pool\.weight_quant_params\.wts_algo: got 'ada_quantize'"
    ):
        quant_config_from_dict(good, "c.json", LAYERS)
