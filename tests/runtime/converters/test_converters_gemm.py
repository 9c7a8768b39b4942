"""Gemm, MatMul and the Transpose+MatMul+Add -> F.linear pattern, against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F
from onnx import helper, numpy_helper

from qdqforge.runtime import reimport
from tests.helpers.ortcheck import assert_matches_ort, check_op, rand

GEMM_CASES = [
    ("linear", (3, 4), (5, 4), {"transB": 1}),
    ("plain", (3, 4), (4, 5), {}),
    ("transA", (4, 3), (4, 5), {"transA": 1}),
    ("alpha_beta", (3, 4), (5, 4), {"transB": 1, "alpha": 0.5, "beta": 2.0}),
]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize(
    ("a", "b", "attrs"), [c[1:] for c in GEMM_CASES], ids=[c[0] for c in GEMM_CASES]
)
def test_gemm_matches_ort(a, b, attrs, opset):
    n = b[0] if attrs.get("transB") else b[1]
    inputs = [("a", rand(*a), False), ("b", rand(*b), True), ("c", rand(n), True)]
    check_op("Gemm", inputs, attrs, opset=opset)


def test_gemm_trans_b_becomes_linear():
    inputs = [("a", rand(3, 4), False), ("b", rand(5, 4), True), ("c", rand(5), True)]
    module = check_op("Gemm", inputs, {"transB": 1})
    assert [n.target for n in module.graph.nodes if n.op == "call_function"] == [F.linear]


@pytest.mark.parametrize(
    ("a", "b"),
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5))],
    ids=["2d", "3d_2d", "batched"],
)
def test_matmul_matches_ort(a, b):
    check_op("MatMul", [("a", rand(*a), False), ("b", rand(*b), False)])


def _linear_model(bias: bool, extra_reader: bool = False):
    w = numpy_helper.from_array(rand(5, 4), "fc.weight")
    b = numpy_helper.from_array(rand(5), "fc.bias")
    nodes = [
        helper.make_node("Transpose", ["fc.weight"], ["wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "wt"], ["mm"]),
    ]
    out = "mm"
    if bias:
        nodes.append(helper.make_node("Add", ["mm", "fc.bias"], ["y"]))
        out = "y"
    outputs = [helper.make_tensor_value_info(out, 1, None)]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("wt", 1, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 3, 4])], outputs, [w, b]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_transpose_matmul_add_becomes_one_linear(bias):
    model = _linear_model(bias)
    module = assert_matches_ort(model, {"x": rand(2, 3, 4)})
    calls = [n.target for n in module.graph.nodes if n.op == "call_function"]
    assert calls == [F.linear]
    assert {"fc.weight"} <= set(dict(module.named_parameters()))


def test_linear_pattern_not_applied_when_transpose_is_read_elsewhere():
    model = _linear_model(True, extra_reader=True)
    module = reimport(model)
    calls = [n.target for n in module.graph.nodes if n.op == "call_function"]
    assert F.linear not in calls
    x = np.ones((1, 3, 4), np.float32)
    assert_matches_ort(model, {"x": x})
