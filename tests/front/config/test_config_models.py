"""create_quant_config / create_quant_retrain_config on real torch models (CNN, transformers)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

import qdqforge as amct
from qdqforge.errors import ConfigError
from qdqforge.front.config import dump_json, load_quant_config, load_retrain_config
from qdqforge.front.config.layers import find_quant_layers
from tests.helpers.torch_models import HandTransformer, SmallTransformer


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AvgPool2d(2)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.down(self.up(self.pool(self.stem(x)))), 1))


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.twice = nn.Linear(6, 6)
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.b.weight = self.a.weight
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.b(self.a(self.twice(self.twice(x)))))


CNN_INPUT = torch.randn(1, 3, 16, 16)
SEQ_INPUT = torch.randn(2, 16, 12)


@pytest.fixture(scope="module")
def cnn_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cnn") / "config.json"
    amct.create_quant_config(str(path), TinyCNN().eval(), CNN_INPUT, skip_layers=["down"])
    return path


def test_cnn_config_lists_exactly_the_quantizable_layers(cnn_config):
    tree = json.loads(cnn_config.read_text())
    assert list(tree) == [
        "version", "batch_num", "activation_offset", "do_fusion", "skip_fusion_layers",
        "stem.0", "pool", "up", "down", "fc",
    ]  # fmt: skip
    assert tree["stem.0"] == {
        "quant_enable": True,
        "activation_quant_params": {
            "num_bits": 8, "act_algo": "ifmr", "max_percentile": 0.999999,
            "min_percentile": 0.999999, "search_range": [0.7, 1.3], "search_step": 0.01,
        },
        "weight_quant_params": {"num_bits": 8, "wts_algo": "arq_quantize", "channel_wise": True},
    }  # fmt: skip
    assert tree["up"]["weight_quant_params"]["channel_wise"] is True
    assert tree["fc"]["weight_quant_params"]["channel_wise"] is False
    assert tree["pool"]["weight_quant_params"]["channel_wise"] is False
    assert tree["down"]["quant_enable"] is False  # skip_layers argument
    assert [tree[k] for k in ("batch_num", "activation_offset", "do_fusion")] == [1, True, True]


def test_written_config_round_trips_and_validates_against_the_model(cnn_config):
    layers = find_quant_layers(TinyCNN().eval(), CNN_INPUT)
    text = cnn_config.read_text()
    assert dump_json(load_quant_config(cnn_config, layers).to_dict()) == text


def test_qat_config_for_the_cnn_leaves_out_avgpool(tmp_path):
    path = tmp_path / "qat.json"
    amct.create_quant_retrain_config(str(path), TinyCNN().eval(), CNN_INPUT)
    config = load_retrain_config(path)
    assert config.layer_names == ("stem.0", "up", "down", "fc")
    assert config.layer("fc").retrain_weight_config.channel_wise is False
    assert all(layer.retrain_enable for layer in config.layers)


def test_hand_transformer_lists_linears_and_disabled_matmuls(tmp_path):
    path = tmp_path / "t.json"
    model = HandTransformer().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    amct.create_quant_config(path, model, (SEQ_INPUT,), batch_num=3, activation_offset=False)
    config = load_quant_config(path)
    block = ["qkv", "matmul_0", "matmul_1", "proj", "mlp.0", "mlp.3"]
    expected = ["embed", *(f"blocks.{i}.{n}" for i in (0, 1) for n in block), "head"]
    assert list(config.layer_names) == expected
    enabled = [layer.name for layer in config.layers if layer.quant_enable]
    assert enabled == [n for n in expected if "matmul" not in n]
    assert config.layer("blocks.0.matmul_0").weight_quant_params is None
    assert (config.batch_num, config.activation_offset) == (3, False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_torch_transformer_encoder_layers():
    names = [layer.name for layer in find_quant_layers(SmallTransformer().eval(), SEQ_INPUT)]
    for i in (0, 1):
        assert f"encoder.layers.{i}.linear1" in names and f"encoder.layers.{i}.linear2" in names
        assert f"encoder.layers.{i}.self_attn.matmul_0" in names
        # out_proj's weight is used functionally by MultiheadAttention: not a graph layer
        assert f"encoder.layers.{i}.self_attn.out_proj" not in names
    assert names[0] == "embed" and names[-1] == "head"


def test_weight_sharing_is_reported_and_disabled(tmp_path, caplog):
    path = tmp_path / "s.json"
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        amct.create_quant_config(path, Shared().eval(), torch.randn(2, 6))
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "twice (called 2 times)" in warning
    assert "a (shares its weight with b)" in warning and "b (shares its weight with a)" in warning
    tree = json.loads(path.read_text())
    assert {k: tree[k]["quant_enable"] for k in ("twice", "a", "b", "out")} == {
        "twice": False, "a": False, "b": False, "out": True,
    }  # fmt: skip
    retrain = tmp_path / "r.json"
    amct.create_quant_retrain_config(retrain, Shared().eval(), torch.randn(2, 6))
    assert not json.loads(retrain.read_text())["a"]["retrain_enable"]


def test_cfg_replaces_arguments_and_says_so(tmp_path, caplog):
    cfg = tmp_path / "q.cfg"
    cfg.write_text('batch_num: 2\nskip_layers: "fc"\n')
    path = tmp_path / "c.json"
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        amct.create_quant_config(
            path,
            TinyCNN().eval(),
            CNN_INPUT,
            skip_layers=["up"],
            batch_num=5,
            config_defination=cfg,
        )
    assert "skip_layers, batch_num are ignored" in caplog.text
    config = load_quant_config(path)
    assert config.batch_num == 2
    assert config.layer("up").quant_enable and not config.layer("fc").quant_enable


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_num": 0}, "batch_num: got 0"),
        ({"activation_offset": 1}, "activation_offset: got 1"),
        ({"skip_layers": ["stem.1"]}, "skip_layers\\[0\\]: unknown layer 'stem.1'"),
    ],
    ids=["batch_num", "activation_offset", "unknown-skip"],
)
def test_bad_arguments_are_config_errors(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        amct.create_quant_config(tmp_path / "c.json", TinyCNN().eval(), CNN_INPUT, **kwargs)
    assert not (tmp_path / "c.json").exists()
