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

from qdqforge.front.verify_budget import Comparison, VerifyBudget
from qdqforge.front.verify_diffs import grid_errors, output_errors
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
    b["t.quant.out"][[7, 8, 9]] = 2  # 3 of 2000 integers two steps off > 1e-3 of them
    bad = Comparison("x_vs_y", grid_errors(["t.quant.out"], a, b), output_errors(["y"], y, y))
    violation = bad.violation(VerifyBudget())
    assert violation.tensor == "t.quant.out" and "3 of 2000" in violation.reason
    b["t.quant.out"][[7, 8, 9]] = 0
    b["t.quant.out"][:5] = 1  # 5 one-step flips of 2000 > 1e-3 (fake-quant vs deploy)
    many = Comparison("x_vs_y", grid_errors(["t.quant.out"], a, b), [])
    assert "5 of 2000" in many.violation(VerifyBudget()).reason
    torch_side = Comparison("torch_vs_y", many.tensors, [])  # 2.5e-3 <= 0.1: flips cascade in QAT
    assert torch_side.violation(VerifyBudget()) is None


def test_deep_tensors_get_the_deep_net_budget():
    names = [f"l{i}.quant.out" for i in range(5)]
    a = {n: np.zeros(1000, np.int8) for n in names}
    b = {n: v.copy() for n, v in a.items()}
    b["l4.quant.out"][:200] = 5  # 20% of a deep tensor far off: float noise amplified by depth
    deep = Comparison("x_vs_y", grid_errors(names, a, b), [])
    assert deep.violation(VerifyBudget()) is None
    b["l4.quant.out"][:300] = 5  # 30%: a broken scale
    broken = Comparison("x_vs_y", grid_errors(names, a, b), [])
    assert broken.violation(VerifyBudget()).tensor == "l4.quant.out"
    b["l1.quant.out"][:20] = 5  # the same 2% near the input is too much there
    shallow = Comparison("x_vs_y", grid_errors(names, a, b), [])
    assert shallow.violation(VerifyBudget()).tensor == "l1.quant.out"
