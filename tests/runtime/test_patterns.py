"""Pattern converters: unit Slice + Squeeze -> select / one shared unbind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.helpers.ortcheck import assert_matches_ort, rand


def _parts_model(indices, axis=1, squeeze_attr=False, opset=17):
    inits = [numpy_helper.from_array(np.array([axis], np.int64), "axis")]
    nodes, outputs = [], []
    for i in indices:
        inits += [
            numpy_helper.from_array(np.array([i], np.int64), f"s{i}"),
            numpy_helper.from_array(np.array([i + 1], np.int64), f"e{i}"),
        ]
        nodes.append(helper.make_node("Slice", ["x", f"s{i}", f"e{i}", "axis"], [f"p{i}"]))
        if squeeze_attr:
            nodes.append(helper.make_node("Squeeze", [f"p{i}"], [f"y{i}"], axes=[axis]))
        else:
            nodes.append(helper.make_node("Squeeze", [f"p{i}", "axis"], [f"y{i}"]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _calls(module):
    return [str(n.target) for n in module.graph.nodes if n.op in ("call_function", "call_method")]


def test_full_cover_becomes_one_unbind():
    module = assert_matches_ort(_parts_model([0, 1, 2]), {"x": rand(2, 3, 4)})
    calls = _calls(module)
    assert calls.count(str(torch.unbind)) == 1 and "select" not in calls


def test_partial_cover_becomes_select():
    module = assert_matches_ort(_parts_model([0, 2]), {"x": rand(2, 3, 4)})
    assert _calls(module) == ["select", "select"]


def test_squeeze_axes_attribute_opset11():
    model = _parts_model([0, 1, 2], squeeze_attr=True, opset=11)
    assert_matches_ort(model, {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("batch", [1, 5])
def test_unbind_gradients_flow(batch):
    from qdqforge.runtime import reimport

    module = reimport(_parts_model([0, 1, 2]))
    x = torch.randn(batch, 3, 4, requires_grad=True)
    sum(y.sum() for y in module(x)).backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))
