"""Module names with any characters map to their layers; a layer left out is named in a warning.

Before: a ``"`` in a ModuleDict key made dynamo fail, the TorchScript fallback's scope resolver
split ``blocks.x/y`` on ``/`` and a key ending in ``@1`` lost its suffix, so those layers were
missing from the config (left float) with no warning. The property: any ModuleDict keys
torch accepts give one config layer per Linear, and no left-out warning. The flow test runs PTQ
end to end (config, calibration, verified save) on such keys.
"""

from __future__ import annotations

import logging

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import qdqforge
from qdqforge.front.config.layers import find_quant_layers
from qdqforge.front.record.file import read_record
from tests.helpers.module_name_models import Blocks

LEFT_OUT = "left out of the config"
KEYS = ['a"b', "x/y", "a@1", "b_1", "n\nl", "ü层", "\\", "/", "0"]


def _acceptable(key: str) -> bool:
    return bool(key) and "." not in key and not hasattr(nn.ModuleDict(), key)


KEY = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=5).filter(_acceptable)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(KEY, min_size=1, max_size=3, unique=True))
def test_every_layer_is_found(caplog, keys):
    torch.manual_seed(0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.config.layers"):
        layers = find_quant_layers(Blocks(keys).eval(), torch.randn(2, 4))
    assert [layer.name for layer in layers] == [f"blocks.{k}" for k in keys]
    assert LEFT_OUT not in caplog.text


def test_ptq_flow_on_odd_names(tmp_path, caplog):
    torch.manual_seed(0)
    model, x = Blocks(KEYS, unused=True).eval(), torch.randn(8, 4)
    config = tmp_path / "c.json"
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.config.layers"):
        qdqforge.create_quant_config(str(config), model, x, batch_num=1)
    assert "'unused' (Linear: forward never calls it in the exported graph)" in caplog.text
    calib = qdqforge.quantize_model(
        str(config), str(tmp_path / "m.onnx"), str(tmp_path / "r.txt"), model, x
    )
    with torch.no_grad():
        calib(x)
    qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp_path / "r.txt"), str(tmp_path / "net"))
    records = read_record(tmp_path / "r.txt")
    assert sorted(records) == sorted(f"blocks.{k}" for k in KEYS)
    assert all(rec.scale_d and rec.scale_w for rec in records.values())


def test_functional_use_is_named(caplog):
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = attention

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    with caplog.at_level(logging.WARNING, logger="qdqforge.front.config.layers"):
        find_quant_layers(Wrap().eval(), torch.randn(2, 3, 8))
    assert "'attn.out_proj' (Linear: its weight is read by nodes of 'attn'" in caplog.text
