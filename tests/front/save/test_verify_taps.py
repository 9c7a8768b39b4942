"""The torch tap of the save-time check reads integers where a module quantizes; the budget.

Protocol modules (``layer`` + ``quant_grid() -> (scale, offset) | None``, as the QAT activation
ops and the calibration module's observers): the integers are recovered from the op's
fake-quantized output, exactly, including the clamp; a module whose ``quant_grid()`` is None
(not quantizing yet) is skipped; the module's mode is restored. Budget (forced comparisons, at
every depth alike): two one-step flips in 2,000 integers are within budget, a third is not; one
flip in a 128-integer tensor is; any integer two steps off is not; the bias comparison allows
one-step flips on 10% of a tensor; outputs within 1e-4 of their range, where forced.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from qdqforge.front.save.verify_budget import BIAS, Comparison, VerifyBudget
from qdqforge.front.save.verify_diffs import grid_errors, output_errors
from qdqforge.front.save.verify_taps import torch_run

T = "t.quant.out"


class ActQuant(nn.Module):
    layer = "fc"

    def __init__(self, scale: float, offset: int, ready: bool = True) -> None:
        super().__init__()
        self.scale, self.offset, self.ready = scale, offset, ready

    def quant_grid(self):
        return (self.scale, self.offset) if self.ready else None

    def forward(self, x):
        q = torch.clamp(torch.round(x / self.scale) + self.offset, -128, 127)
        return (q - self.offset) * self.scale, torch.tensor(self.scale)


class Net(nn.Module):
    def __init__(self, ready: bool = True) -> None:
        super().__init__()
        self.act, self.fc = ActQuant(0.037, -5, ready), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.act(x)[0])


def test_protocol_module_integers_are_exact():
    torch.manual_seed(0)
    net = Net().train()
    x = torch.randn(4, 6) * 4
    x[0, 0], x[0, 1] = 10.0, -10.0
    outputs, grids = torch_run(net, [x.numpy()])
    want = np.clip(np.round(x.numpy() / np.float32(0.037)) - 5, -128, 127)
    np.testing.assert_array_equal(grids["fc.quant.out"], want)
    assert want.min() == -128 and want.max() == 127  # the clamp is part of what is compared
    assert net.training and outputs[0].shape == (4, 2)


def test_a_module_not_quantizing_yet_is_skipped():
    _, grids = torch_run(Net(ready=False), [np.ones((2, 6), np.float32)])
    assert grids == {}


def judge(a, b, kind: str = "round_off", y_a=None, y_b=None):
    y_a = [np.ones(3)] if y_a is None else y_a
    y_b = y_a if y_b is None else y_b
    tensors = grid_errors([T], {T: a}, {T: b})
    comparison = Comparison("x_vs_y", "reference", tensors, output_errors(["y"], y_a, y_b), kind)
    return comparison.violation(VerifyBudget())


def test_one_flip_in_a_thousand_is_round_off_more_are_not():
    a = np.zeros(2000, np.int8)
    b = a.copy()
    b[[7, 8]] = 1
    assert judge(a, b) is None
    b[9] = 1
    violation = judge(a, b)
    assert violation.tensor == T and "3 of 2000" in violation.reason
    small = np.zeros(128, np.int8)
    flipped = small.copy()
    flipped[3] = -1
    assert judge(small, flipped) is None  # one float tie in a small tensor


def test_two_steps_are_a_fault_anywhere():
    a = np.zeros(100_000, np.int8)
    b = a.copy()
    b[5] = 2
    assert "up to 2 steps" in judge(a, b).reason
    assert judge(a, b, kind=BIAS) is not None  # the bias rounding moves one step at most


def test_the_bias_comparison_allows_ten_percent_one_step_flips():
    a = np.zeros(1000, np.int8)
    b = a.copy()
    b[:100] = 1
    assert judge(a, b, kind=BIAS) is None and judge(a, b) is not None
    b[:101] = 1
    assert judge(a, b, kind=BIAS) is not None


def test_outputs_must_agree_to_round_off():
    a = np.zeros(10, np.int8)
    y = [np.array([1.0, -2.0, 4.0])]
    assert judge(a, a, y_a=y, y_b=[y[0] + 3e-4]) is None
    violation = judge(a, a, y_a=y, y_b=[y[0] + 5e-4])
    assert violation.tensor == "y" and "0.000125 of its range" in violation.reason
    assert judge(a, a, kind=BIAS, y_a=y, y_b=[y[0] + 1.0]) is None  # not judged there


def test_an_output_past_an_unforced_rounding_is_reported_not_judged():
    """forced=False (rounding_cone): the runtime renamed the tensors a forced run would have fed,
    so the output differs as a free run does; its difference stays in the comparison."""
    a = np.zeros(10, np.int8)
    y = [np.array([1.0, -2.0, 4.0])]
    (free,) = output_errors(["y"], y, [y[0] + 0.1])
    unforced = dataclasses.replace(free, forced=False)
    comparison = Comparison("x_vs_x_session", "runtime", grid_errors([T], {T: a}, {T: a}), [free])
    assert comparison.violation(VerifyBudget()).tensor == "y"
    comparison = dataclasses.replace(comparison, outputs=[unforced])
    assert comparison.violation(VerifyBudget()) is None
    assert comparison.outputs[0].max_rel == free.max_rel
