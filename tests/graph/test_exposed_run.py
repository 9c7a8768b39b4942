"""graph/exposed_run.py: intermediate tensors read as extra outputs, in onnxruntime.

Graph ``x -> Mul(2) -> m -> Round -> t -> Add(0.5) -> y``: exposing ``m`` and ``t`` returns
them with ``y`` (or without it), equal to numpy's arithmetic, the model left as it was; a tensor
that is already an output is not added twice.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from qdqforge.graph import numerics
from qdqforge.graph.exposed_run import expose, run_exposed
from tests.helpers.onnx_graphs import init, make_model, tensor_info

X = np.array([0.2, 1.3, -2.6, 4.0], np.float32)


def chain():
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["m"]),
        helper.make_node("Round", ["m"], ["t"]),
        helper.make_node("Add", ["t", "half"], ["y"]),
    ]
    inits = [init("two", np.float32(2)), init("half", np.float32(0.5))]
    return make_model(nodes, [tensor_info("x", [4])], [tensor_info("y", [4])], inits)


@pytest.mark.parametrize(
    "session_of", [numerics.session, numerics.default_session], ids=["disable_all", "default"]
)
def test_exposed_tensors_come_back_with_the_outputs(session_of):
    model = chain()
    values = run_exposed(model, ["m", "t"], {"x": X}, session_of=session_of)
    assert list(values) == ["y", "m", "t"]
    np.testing.assert_array_equal(values["m"], 2 * X)
    np.testing.assert_array_equal(values["t"], np.round(2 * X))
    np.testing.assert_array_equal(values["y"], np.round(2 * X) + 0.5)
    assert [o.name for o in model.graph.output] == ["y"]  # the model is left as it was


def test_without_keep_outputs_only_the_exposed_tensors_come_back():
    values = run_exposed(chain(), ["t"], {"x": X}, keep_outputs=False)
    assert list(values) == ["t"]
    np.testing.assert_array_equal(values["t"], np.round(2 * X))


def test_an_output_or_a_repeated_name_is_exposed_once():
    exposed = expose(chain(), ["y", "t", "t"])
    assert [o.name for o in exposed.graph.output] == ["y", "t"]
