"""ReduceMean/Sum/Max/Min/Prod/L2: axes attribute (old opsets) or input (new ones), keepdims."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ortcheck import check_op, rand

# opset where axes moved from attribute to input
AXES_INPUT = {
    "ReduceSum": 13,
    "ReduceMean": 18,
    "ReduceMax": 18,
    "ReduceMin": 18,
    "ReduceProd": 18,
    "ReduceL2": 18,
}
CASES = [([1], 1), ([0, -1], 0), (None, 1), (None, 0)]


def _inputs(op, opset, axes, x):
    if axes is None:
        return [("x", x, False)], {}
    if opset >= AXES_INPUT[op]:
        return [("x", x, False), ("axes", np.array(axes, np.int64), True)], {}
    return [("x", x, False)], {"axes": axes}


@pytest.mark.parametrize("opset", [17, 18, 20])
@pytest.mark.parametrize(("axes", "keepdims"), CASES, ids=["one", "two_drop", "all", "all_drop"])
@pytest.mark.parametrize("op", list(AXES_INPUT))
def test_reduce_matches_ort(op, axes, keepdims, opset):
    x = rand(2, 3, 4, low=0.5, high=1.5)
    inputs, attrs = _inputs(op, opset, axes, x)
    check_op(op, inputs, {**attrs, "keepdims": keepdims}, opset=opset)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_noop_with_empty_axes(op):
    check_op(op, [("x", rand(2, 3), False)], {"noop_with_empty_axes": 1}, opset=18)
