"""rounding_cone: an output is reached by a rounding unless the forced tensors cut every path."""

from __future__ import annotations

from onnx import helper

from qdqforge.graph.rounding_cone import reached_by_rounding, rounds
from tests.helpers.onnx_graphs import make_model, tensor_info


def chain():
    """x -> Round -> r -> Mul(r, x) -> m -> Relu -> y;  x -> Relu -> z (no rounding)."""
    nodes = [
        helper.make_node("Round", ["x"], ["r"]),
        helper.make_node("Mul", ["r", "x"], ["m"]),
        helper.make_node("Relu", ["m"], ["y"]),
        helper.make_node("Relu", ["x"], ["z"]),
    ]
    outputs = [tensor_info("y", None), tensor_info("z", None)]
    return make_model(nodes, [tensor_info("x", [2, 3])], outputs)


def test_a_rounding_upstream_reaches_the_output_unless_cut():
    model = chain()
    assert reached_by_rounding(model, ["y", "z"], []) == {"y"}
    assert reached_by_rounding(model, ["y", "z"], ["m"]) == set()  # m forced: Round cut off
    assert reached_by_rounding(model, ["y"], ["r"]) == set()  # the rounding's own output forced
    assert reached_by_rounding(model, ["y"], ["x"]) == {"y"}  # cut above the rounding


def test_rounding_ops():
    make = helper.make_node
    assert rounds(make("QuantizeLinear", ["x", "s"], ["q"]))
    assert rounds(make("QLinearConv", ["x"] * 8, ["q"], domain="com.microsoft"))
    assert rounds(make("QGemm", ["a", "sa", "za", "b", "sb", "zb", "c", "sy"], ["y"]))
    assert not rounds(make("QGemm", ["a", "sa", "za", "b", "sb", "zb", "c"], ["y"]))  # float out
    assert not rounds(make("DequantizeLinear", ["q", "s"], ["x"]))
    assert not rounds(make("MatMulIntegerToFloat", ["a", "b", "sa", "sb"], ["y"]))
