"""The torch tap of the save-time check reads integers where a module quantizes.

Protocol modules (``layer`` + ``quant_grid() -> (scale, offset)``, as the QAT activation ops):
the integers are recovered from the op's fake-quantized output, exactly, including the clamp;
the module's mode is restored. Budget judgement: one flip is within budget, two steps are not.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from qdqforge.front.verify_budget import Comparison, VerifyBudget, grid_errors, output_errors
from qdqforge.front.verify_taps import torch_run


class ActQuant(nn.Module):
    layer = "fc"

    def __init__(self, scale: float, offset: int) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def quant_grid(self):
        return self.scale, self.offset

    def forward(self, x):
        q = torch.clamp(torch.round(x / self.scale) + self.offset, -128, 127)
        return (q - self.offset) * self.scale, torch.tensor(self.scale)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act, self.fc = ActQuant(0.037, -5), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.act(x)[0])


def test_protocol_module_integers_are_exact():
    torch.manual_seed(0)
    net = Net().train()
    x = torch.randn(4, 6) * 4
    x[0, 0], x[0, 1] = 10.0, -10.0
    outputs, grids = torch_run(net, onnx.ModelProto(), [x.numpy()])
    want = np.clip(np.round(x.numpy() / np.float32(0.037)) - 5, -128, 127)
    np.testing.assert_array_equal(grids["fc.quant.out"], want)
    assert want.min() == -128 and want.max() == 127  # the clamp is part of what is compared
    assert net.training and outputs[0].shape == (4, 2)


def test_budget_allows_one_flip_not_two_steps():
    a = {"t.quant.out": np.zeros(2000, np.int8)}
    b = {"t.quant.out": a["t.quant.out"].copy()}
    b["t.quant.out"][7] = 1
    y = [np.ones(3)]
    ok = Comparison("x_vs_y", grid_errors(["t.quant.out"], a, b), output_errors(["y"], y, y))
    assert ok.violation(VerifyBudget()) is None
    b["t.quant.out"][7] = 2
    bad = Comparison("x_vs_y", grid_errors(["t.quant.out"], a, b), output_errors(["y"], y, y))
    assert bad.violation(VerifyBudget()).tensor == "t.quant.out"
    b["t.quant.out"][:4] = 1  # with index 7: 5 flips of 2000 > 1e-3 (fake-quant vs deploy)
    many = Comparison("x_vs_y", grid_errors(["t.quant.out"], a, b), [])
    assert "5 of 2000" in many.violation(VerifyBudget(max_steps=2)).reason
    torch_side = Comparison("torch_vs_y", many.tensors, [])  # 2.5e-3 <= 0.1: flips cascade in QAT
    assert torch_side.violation(VerifyBudget(max_steps=2)) is None
