"""A coarse int32 bias grid is int8 arithmetic, reported as a warning, not a failed save.

The QDQ and deploy models add a layer's bias on ``s_d * s_w[c]``; where a channel's weights are
large the grid is coarse. Pretrained nets have such channels: dead inputs read through large
BN-folded weights (EfficientNet-Lite0 after QAT set-up: steps up to 2.2 beside an output step of
0.045, integers up to 16 steps off; the save used to fail). Here ``conv1``'s channel 3 reads a
dead input channel through a weight of 1000: its bias step is ``s_d * 1000 / 127``, and its
output, the bias alone, lands up to half that step away on the int32 grid: two or more steps of
``conv2``'s input grid. The save passes; ``bias_grid_warnings`` names the tensor and ``conv1``;
the fake-quant model (float bias) still matches the torch module exactly, and the QDQ model with
the float biases fed in matches the fake-quant model within round-off.
"""

from __future__ import annotations

import json

import torch
from torch import nn

import qdqforge
from tests.helpers.ptq_flow import run_seed_flow


class DeadChannelNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.eye(4).reshape(4, 4, 1, 1) * 0.9)
            self.conv1.weight[3, 3] = 1000.0  # reads input channel 3, always 0
            self.conv1.bias.copy_(torch.tensor([0.5, 0.5, 0.5, 3.09]))

    def forward(self, x):
        return self.conv2(torch.clamp(self.conv1(x), 0.0, 6.0))


def batches(count: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        x = torch.rand(4, 4, 8, 8, generator=gen) * 6 - 3
        x[:, 3] = 0.0
        out.append(x)
    return out


def test_coarse_bias_grid_is_a_warning(tmp_path):
    model, data = DeadChannelNet().eval(), batches()
    cfg = tmp_path / "c.json"
    qdqforge.create_quant_config(str(cfg), model, data[0])
    run_seed_flow(cfg, tmp_path / "r.txt", tmp_path / "m.onnx", model, data, with_dmq=False)
    qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp_path / "r.txt"), str(tmp_path / "net"))
    report = json.loads((tmp_path / "net_verify.json").read_text())
    assert report["passed"] and report["first_diverging"] is None
    (warning,) = report["bias_grid_warnings"]
    assert warning["tensor"] == "conv2.quant.out" and warning["layer"] == "conv1"
    comparisons = report["comparisons"]
    moved = comparisons["fake_quant_vs_qdq_bias"]
    assert moved["kind"] == "bias_grid" and moved["max_steps"] >= 2
    exact = comparisons["fake_quant_vs_qdq"]  # the float biases fed in: round-off only
    assert exact["kind"] == "bias" and exact["max_steps"] <= 1
    assert comparisons["torch_vs_fake_quant"]["max_steps"] <= 1
