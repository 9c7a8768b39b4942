"""Grouped ConvTranspose layers (front/config/grouped_transpose.py): generated configs quantize
their weights per tensor so PTQ and QAT save end to end; a config asking for per-channel weights
on one fails before any calibration or training, naming the layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError
from qdqforge.front.record.file import read_record
from tests.helpers.ptq_flow import run_seed_flow


class GroupedUp(nn.Module):
    """Conv1d -> grouped ConvTranspose1d, and a Conv3d + BN branch, joined by a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose1d(8, 8, 2, stride=2, groups=2)
        self.c3 = nn.Conv3d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(8 * 32 + 4 * 4 * 4 * 4, 5)

    def forward(self, a, b):
        y = torch.relu(self.up(torch.tanh(self.c1(a)))).flatten(1)
        z = torch.relu(self.bn(self.c3(b))).flatten(1)
        return self.fc(torch.cat([y, z], 1))


def model_and_inputs():
    torch.manual_seed(0)
    inputs = (torch.randn(4, 3, 16), torch.randn(4, 1, 4, 4, 4))
    return GroupedUp().eval(), inputs


def weight_params(cfg, key) -> dict:
    return json.loads(cfg.read_text())["up"][key]


def set_channel_wise(cfg, key) -> None:
    data = json.loads(cfg.read_text())
    data["up"][key]["channel_wise"] = True
    cfg.write_text(json.dumps(data))


def assert_saved(paths, record) -> None:
    """The three models written; the record holds one weight scale for 'up', several for 'c1'."""
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    records = read_record(record)
    assert len(records["up"].scale_w) == 1 and len(records["c1"].scale_w) == 8


def test_qat_defaults_to_per_tensor_and_saves(tmp_path):
    model, inputs = model_and_inputs()
    cfg, record = tmp_path / "qat.json", tmp_path / "r.txt"
    qdqforge.create_quant_retrain_config(str(cfg), model, inputs)
    assert weight_params(cfg, "retrain_weight_config")["channel_wise"] is False
    assert json.loads(cfg.read_text())["c1"]["retrain_weight_config"]["channel_wise"] is True
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), inputs).train()
    opt = torch.optim.SGD(qat.parameters(), lr=1e-2)
    for _ in range(2):
        loss = qat(*inputs).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    paths = qdqforge.save_quant_retrain_model(
        str(cfg), qat, str(record), str(tmp_path / "n"), inputs
    )
    assert all(tmp_path.joinpath(p).exists() for p in paths)


def test_ptq_defaults_to_per_tensor_and_saves(tmp_path):
    model, inputs = model_and_inputs()
    cfg, record, onnx_file = tmp_path / "c.json", tmp_path / "r.txt", tmp_path / "m.onnx"
    qdqforge.create_quant_config(str(cfg), model, inputs)
    assert weight_params(cfg, "weight_quant_params")["channel_wise"] is False
    run_seed_flow(cfg, record, onnx_file, model, [inputs], with_dmq=False)
    paths = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "n"))
    assert_saved(paths, record)


@pytest.mark.parametrize("flow", ["qat", "ptq"])
def test_per_channel_request_fails_before_any_work(tmp_path, flow):
    model, inputs = model_and_inputs()
    cfg, record = tmp_path / "c.json", tmp_path / "r.txt"
    if flow == "qat":
        qdqforge.create_quant_retrain_config(str(cfg), model, inputs)
        set_channel_wise(cfg, "retrain_weight_config")
        call = lambda: qdqforge.create_quant_retrain_model(str(cfg), model, str(record), inputs)  # noqa: E731
    else:
        qdqforge.create_quant_config(str(cfg), model, inputs)
        set_channel_wise(cfg, "weight_quant_params")
        onnx_file = tmp_path / "m.onnx"
        call = lambda: qdqforge.quantize_model(str(cfg), str(onnx_file), str(record), model, inputs)  # noqa: E731
    with pytest.raises(ConfigError, match=r"layer 'up': a ConvTranspose with groups=2"):
        call()
    assert not (tmp_path / "m.onnx").exists()
