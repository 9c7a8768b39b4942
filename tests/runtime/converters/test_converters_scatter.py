"""ScatterND, ScatterElements and CumSum against onnxruntime (every reduction, negative indices)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ortcheck import check_op, rand

I64 = np.int64


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_matches_ort(reduction):
    data = rand(4, 5, 3)
    indices = np.array([[[1, 2], [-1, 0]], [[0, 4], [2, -2]]], I64)  # distinct rows, negatives
    updates = rand(2, 2, 3)
    inputs = [("data", data, False), ("indices", indices, True), ("updates", updates, False)]
    check_op("ScatterND", inputs, {"reduction": reduction}, opset=18)


def test_scatter_nd_whole_rows_and_runtime_indices():
    data, updates = rand(6, 4), rand(2, 4)
    indices = np.array([[5], [1]], I64)
    inputs = [("data", data, False), ("indices", indices, False), ("updates", updates, False)]
    check_op("ScatterND", inputs, opset=13)


def test_scatter_nd_accumulates_repeated_indices_with_add():
    data, updates = rand(3, 2), rand(3, 2)
    indices = np.array([[1], [1], [2]], I64)
    inputs = [("data", data, False), ("indices", indices, True), ("updates", updates, False)]
    check_op("ScatterND", inputs, {"reduction": "add"}, opset=18)  # row 1 gets both updates


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_matches_ort(axis, reduction):
    data = rand(4, 5)
    dim = data.shape[axis]
    shape = (4, 2) if axis in (1, -1) else (2, 5)
    count, keep = shape[1 - axis % 2], shape[axis]  # distinct indices per scattered line
    rows = np.stack([np.random.default_rng(i).permutation(dim)[:keep] for i in range(count)])
    indices = (rows if axis != 0 else rows.T).astype(I64)
    indices[0, 0] -= dim  # one negative index
    inputs = [("data", data, False), ("indices", indices, True), ("updates", rand(*shape), False)]
    check_op("ScatterElements", inputs, {"axis": axis, "reduction": reduction}, opset=18)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_matches_ort(axis, exclusive, reverse):
    x = rand(3, 5, 2)
    inputs = [("x", x, False), ("axis", np.array(axis, I64), True)]
    check_op("CumSum", inputs, {"exclusive": exclusive, "reverse": reverse}, dynamic=True)


def test_cumsum_on_int64_position_ids():
    mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], I64)
    check_op("CumSum", [("mask", mask, False), ("axis", np.array([1], I64), True)], dynamic=True)
