"""A forced run feeds another run's values in at named tensors and returns what the model computes.

Graph ``x -> Mul(2) -> Round -> t1 -> Add(0.5) -> Floor -> t2 -> Mul(3) -> y``: forcing ``t1``
and ``t2`` makes ``t2.computed`` a function of the forced ``t1`` only, and ``y`` a function of
the forced ``t2``; the model itself is not modified, and a name no node computes is ignored.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from qdqforge.graph.forced_run import forced_model, forced_run
from tests.helpers.onnx_graphs import init, make_model, tensor_info


def chain():
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["m"]),
        helper.make_node("Round", ["m"], ["t1"]),
        helper.make_node("Add", ["t1", "half"], ["a"]),
        helper.make_node("Floor", ["a"], ["t2"]),
        helper.make_node("Mul", ["t2", "three"], ["y"]),
    ]
    inits = [
        init("two", np.float32(2)),
        init("half", np.float32(0.5)),
        init("three", np.float32(3)),
    ]
    return make_model(nodes, [tensor_info("x", [4])], [tensor_info("y", [4])], inits)


def test_each_tensor_is_computed_from_the_forced_values_upstream():
    model = chain()
    x = np.array([0.2, 1.3, -2.6, 4.0], np.float32)
    forced = {
        "t1": np.array([10, 20, 30, 40], np.float32),
        "t2": np.array([1, 2, 3, 4], np.float32),
    }
    dtypes = {"t1": np.dtype(np.float32), "t2": np.dtype(np.float32)}
    (y,), computed = forced_run(model, {"x": x}, forced, dtypes)
    np.testing.assert_array_equal(computed["t1"], np.round(2 * x))  # from x: nothing upstream
    np.testing.assert_array_equal(computed["t2"], np.floor(forced["t1"] + 0.5))  # from forced t1
    np.testing.assert_array_equal(y, 3 * forced["t2"])  # the outputs read the forced t2
    assert [o.name for o in model.graph.output] == ["y"]  # the model is left as it was


def test_names_no_node_computes_are_ignored():
    model = chain()
    forced = {"nowhere": np.zeros(4, np.float32), "t1": np.zeros(4, np.float32)}
    dtypes = {"nowhere": np.dtype(np.float32), "t1": np.dtype(np.float32)}
    _, computed = forced_run(model, {"x": np.ones(4, np.float32)}, forced, dtypes)
    assert set(computed) == {"t1"}
    inputs = [i.name for i in forced_model(model, ["t1"], dtypes).graph.input]
    assert inputs == ["x", "t1"]
