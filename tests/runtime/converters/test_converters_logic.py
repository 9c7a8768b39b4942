"""Comparisons, logic, Where, IsNaN/IsInf, Cast/CastLike, Constant, ConstantOfShape, Identity."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.helpers.ortcheck import check_op, rand

COMPARE = [
    ("Equal", 13),
    ("Equal", 19),
    ("Greater", 13),
    ("GreaterOrEqual", 16),
    ("Less", 13),
    ("LessOrEqual", 16),
]


@pytest.mark.parametrize(("op", "opset"), COMPARE, ids=[f"{o}{v}" for o, v in COMPARE])
def test_compare_matches_ort(op, opset):
    a = np.array([1, 2, 3, 4], np.float32)
    b = np.array([2, 2, 2, 2], np.float32)
    check_op(op, [("a", a, False), ("b", b, False)], opset=max(opset, 17))


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic_matches_ort(op):
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    check_op(op, [("a", a, False), ("b", b, False)])


def test_not_matches_ort():
    check_op("Not", [("a", np.array([True, False]), False)])


def test_where_matches_ort():
    cond = np.array([[True, False, True]])
    check_op("Where", [("c", cond, False), ("a", rand(2, 3), False), ("b", rand(1, 3), False)])


def test_where_with_scalar_constants():
    cond = np.array([True, False, True])
    check_op(
        "Where", [("c", cond, False), ("a", np.array(1.5, np.float32), True), ("b", rand(3), False)]
    )


SPECIAL = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)


@pytest.mark.parametrize("opset", [13, 20])
def test_isnan_matches_ort(opset):
    check_op("IsNaN", [("x", SPECIAL, False)], opset=opset)


@pytest.mark.parametrize(("neg", "pos"), [(1, 1), (1, 0), (0, 1)], ids=["both", "neg", "pos"])
@pytest.mark.parametrize("opset", [17, 20])
def test_isinf_matches_ort(neg, pos, opset):
    attrs = {"detect_negative": neg, "detect_positive": pos}
    check_op("IsInf", [("x", SPECIAL, False)], attrs, opset=opset)


CASTS = [
    (TensorProto.INT64, rand(5, low=-3, high=3)),
    (TensorProto.FLOAT16, rand(5)),
    (TensorProto.BOOL, np.array([0, 1.5, -2], np.float32)),
    (TensorProto.FLOAT, np.array([1, 2], np.int64)),
    (TensorProto.INT32, rand(4)),
]


@pytest.mark.parametrize("opset", [13, 19, 21])
@pytest.mark.parametrize(("to", "x"), CASTS, ids=["f2i64", "f2h", "f2bool", "i2f", "f2i32"])
def test_cast_matches_ort(to, x, opset):
    check_op("Cast", [("x", x, False)], {"to": to}, opset=opset)


def test_cast_like_matches_ort():
    check_op("CastLike", [("x", rand(3), False), ("t", np.array([1], np.int32), False)])


@pytest.mark.parametrize("opset", [19, 21])
def test_cast_like_same_type_is_identity(opset):
    module = check_op("CastLike", [("x", rand(3), False), ("t", rand(1), False)], opset=opset)
    assert not [n for n in module.graph.nodes if n.op in ("call_function", "call_method")]


CONSTANTS = [
    ("value", {"value": helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, 2.5])}),
    ("value_float", {"value_float": 3.0}),
    ("value_floats", {"value_floats": [1.0, 2.0]}),
    ("value_int", {"value_int": 7}),
    ("value_ints", {"value_ints": [1, 2, 3]}),
]


@pytest.mark.parametrize("opset", [13, 19, 21])
@pytest.mark.parametrize("attrs", [c[1] for c in CONSTANTS], ids=[c[0] for c in CONSTANTS])
def test_constant_matches_ort(attrs, opset):
    check_op("Constant", [], attrs, opset=opset)


@pytest.mark.parametrize("opset", [17, 20, 21])
@pytest.mark.parametrize("runtime", [False, True], ids=["folded", "runtime"])
def test_constant_of_shape_matches_ort(runtime, opset):
    value = helper.make_tensor("v", TensorProto.INT32, [1], [4])
    check_op(
        "ConstantOfShape",
        [("s", np.array([2, 3], np.int64), not runtime)],
        {"value": value},
        opset=opset,
    )


def test_constant_of_shape_default_zero_float():
    check_op("ConstantOfShape", [("s", np.array([2, 3], np.int64), False)])


@pytest.mark.parametrize("opset", [13, 16, 19, 21])
def test_identity_matches_ort(opset):
    check_op("Identity", [("x", rand(2), False)], opset=opset)
