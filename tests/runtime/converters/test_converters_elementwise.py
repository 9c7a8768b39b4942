"""Elementwise arithmetic, unary math and variadic ops against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ortcheck import check_op, rand

BINARY = ["Add", "Sub", "Mul", "Div", "Pow"]


@pytest.mark.parametrize("opset", [13, 14, 17])
@pytest.mark.parametrize("op", BINARY)
def test_binary_broadcast_matches_ort(op, opset):
    a = rand(2, 3, 4, low=0.5, high=2)
    b = rand(3, 1, low=0.5, high=2)
    check_op(op, [("a", a, False), ("b", b, False)], opset=opset)


@pytest.mark.parametrize("op", BINARY)
def test_binary_with_scalar_constant(op):
    check_op(
        op, [("a", rand(2, 3, low=0.5, high=2), False), ("c", np.array(2.0, np.float32), True)]
    )


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32], ids=["int64", "int32"])
def test_integer_binary_matches_ort(op, dtype):
    a = np.array([7, -7, 9, -9, 5, 0], dtype)
    b = np.array([2, 2, -4, -4, 5, 3], dtype)
    check_op(op, [("a", a, False), ("b", b, False)])


def test_integer_div_truncates_toward_zero():
    module = check_op(
        "Div",
        [("a", np.array([-7, 7], np.int64), False), ("b", np.array([2, -2], np.int64), False)],
    )
    assert module is not None


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_matches_ort(fmod):
    if fmod:
        a, b = rand(6), rand(6, low=0.5, high=2)
    else:
        a = np.array([7, -7, 9, -9, 5, 4], np.int64)
        b = np.array([2, 2, -4, -4, 3, -3], np.int64)
    check_op("Mod", [("a", a, False), ("b", b, False)], {"fmod": fmod})


UNARY = [
    "Sqrt",
    "Neg",
    "Exp",
    "Log",
    "Abs",
    "Floor",
    "Ceil",
    "Reciprocal",
    "Sign",
    "Round",
    "Sin",
    "Cos",
]


@pytest.mark.parametrize("op", UNARY)
def test_unary_matches_ort(op):
    x = rand(3, 4, low=0.1, high=3) if op in ("Sqrt", "Log") else rand(3, 4, low=-3, high=3)
    if op == "Round":
        x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.2], np.float32)
    check_op(op, [("x", x, False)])


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_variadic_matches_ort(op, n):
    inputs = [(f"x{i}", rand(2, 3) if i else rand(1, 3), False) for i in range(n)]
    check_op(op, inputs)
