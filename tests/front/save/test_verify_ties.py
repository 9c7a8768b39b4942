"""Float ties in the save-time check (``front.save.verify_ties``).

Two models ``x -> Mul(c) -> QuantizeLinear(s=1) -> DequantizeLinear``: one value repeated at 8
of 16 positions lies 4e-6 steps below the half-point 36.5. Model B multiplies by ``1 + 2^-22``
(float round-off's size), so it rounds that value up at all 8 positions: 8 flips, over the
budget of 1, all of them ties (the two pre-rounding values 9e-6 steps apart), so the comparison
passes and reports them. A B off by 1 % rounds the same 8 values up too, 0.37 steps away: those
flips are a fault and stay counted, as do those of a zero point one off. A fake-quant ``Clip``
tensor is not examined.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qdqforge.front.save.verify_budget import Comparison, VerifyBudget
from qdqforge.front.save.verify_diffs import grid_errors
from qdqforge.front.save.verify_taps import ort_forced, ort_run
from qdqforge.front.save.verify_ties import TIE_STEPS, explain_ties, rounding_of

T = "t.quant.out"
EDGE = np.nextafter(np.float32(36.5), np.float32(0))  # 36.4999962
VALUES = np.array([EDGE] * 8 + [1, 2, 3, 4, 5, 6, 7, 8], dtype=np.float32)


def _model(factor: float, offset: int = 0, y_out: bool = False) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Mul", ["x", "c"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "s", "z"], [T]),
        helper.make_node("DequantizeLinear", [T, "s", "z"], ["out"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(factor, np.float32), "c"),
        numpy_helper.from_array(np.array(1.0, np.float32), "s"),
        numpy_helper.from_array(np.array(offset, np.int8), "z"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [16])
            for n in ["out", "y"][: 1 + y_out]
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _compare(b_factor: float, b_offset: int = 0, y_out=False) -> tuple[Comparison, Comparison]:
    a, b = _model(1.0, y_out=y_out), _model(b_factor, b_offset, y_out)
    feeds = {"x": VALUES}
    a_run = ort_run(a, [T], feeds)
    _, b_integers = ort_forced(b, b, feeds, a_run[1])
    raw = Comparison("qdq_vs_deploy", "reference", grid_errors([T], a_run[1], b_integers), [])
    return raw, explain_ties(raw, VerifyBudget(), (a, b), feeds, a_run[1])


def test_flips_on_a_repeated_half_point_are_ties():
    raw, explained = _compare(1 + 2**-22)
    assert raw.tensors[0].differ == 8  # the repeated value flipped everywhere
    assert raw.violation(VerifyBudget()) is not None  # over the budget of 1 on its own
    assert explained.tensors[0].ties == 8
    assert explained.violation(VerifyBudget()) is None


def test_a_rounded_value_that_is_also_a_graph_output_is_read():
    raw, explained = _compare(1 + 2**-22, y_out=True)
    assert raw.tensors[0].differ == 8 and explained.tensors[0].ties == 8


def test_flips_of_a_wrong_factor_stay_counted():
    raw, explained = _compare(1.01)
    assert raw.tensors[0].differ == 8
    assert explained.tensors[0].ties == 0
    violation = explained.violation(VerifyBudget())
    assert violation is not None and "8 of 16 integers off" in violation.reason


def test_an_offset_one_off_is_not_a_tie():
    raw, explained = _compare(1.0, 1)  # every integer one step up, same x / s
    assert raw.tensors[0].differ == 16 and explained.tensors[0].ties == 0
    assert explained.violation(VerifyBudget()) is not None


def test_tie_tolerance_is_far_below_a_step_and_above_round_off():
    gap = float(np.float32(EDGE * np.float32(1 + 2**-22))) - float(EDGE)
    assert gap < TIE_STEPS < 0.01  # a 0.1 % scale error 36 steps out is 0.036 steps


def test_a_tensor_within_budget_is_not_rerun():
    raw, explained = _compare(1.0)
    assert raw.tensors[0].differ == 0 and explained is raw


def test_only_quantize_linear_tensors_are_examined():
    clip = helper.make_model(
        helper.make_graph(
            [helper.make_node("Clip", ["x", "lo", "hi"], [T])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info(T, TensorProto.FLOAT, [4])],
            [
                numpy_helper.from_array(np.array(-128, np.float32), "lo"),
                numpy_helper.from_array(np.array(127, np.float32), "hi"),
            ],
        )
    )
    assert rounding_of(clip, T) is None
    assert rounding_of(_model(1.0), T).scale == 1.0
