"""BatchNormalization (eval semantics vs ORT), Layer-, Instance- and GroupNormalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdqforge.runtime import reimport
from tests.helpers.ortcheck import check_op, rand, run_ort


@pytest.mark.parametrize("opset", [9, 14, 15, 17])
@pytest.mark.parametrize(
    "shape", [(2, 3), (2, 3, 5), (2, 3, 4, 4), (1, 3, 2, 2, 2)], ids=["1d_flat", "1d", "2d", "3d"]
)
def test_batch_norm_eval_matches_ort(shape, opset):
    c = shape[1]
    inputs = [
        ("x", rand(*shape), False),
        ("bn.weight", rand(c, low=0.5, high=1.5), True),
        ("bn.bias", rand(c), True),
        ("bn.running_mean", rand(c), True),
        ("bn.running_var", rand(c, low=0.5, high=2.0), True),
    ]
    check_op("BatchNormalization", inputs, {"epsilon": 1e-3}, opset=opset)


LN_CASES = [
    ("last", (2, 3, 8), -1, (8,)),
    ("last2", (2, 3, 8), -2, (3, 8)),
    ("axis1", (2, 3, 4), 1, (3, 4)),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(
    ("shape", "axis", "w_shape"), [c[1:] for c in LN_CASES], ids=[c[0] for c in LN_CASES]
)
def test_layer_norm_matches_ort(shape, axis, w_shape, bias):
    inputs = [("x", rand(*shape), False), ("ln.weight", rand(*w_shape), True)]
    if bias:
        inputs.append(("ln.bias", rand(*w_shape), True))
    check_op("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-5})


def test_layer_norm_broadcast_weight():
    inputs = [("x", rand(2, 3, 4), False), ("ln.weight", rand(4), True)]
    check_op("LayerNormalization", inputs, {"axis": 1})


def _bn_training_model():
    from onnx import TensorProto, helper, numpy_helper

    c = 3
    inits = [
        numpy_helper.from_array(rand(c, low=0.5, high=1.5), "bn.weight"),
        numpy_helper.from_array(rand(c), "bn.bias"),
        numpy_helper.from_array(np.zeros(c, np.float32), "bn.running_mean"),
        numpy_helper.from_array(np.ones(c, np.float32), "bn.running_var"),
    ]
    names = ["x", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    node = helper.make_node(
        "BatchNormalization", names, ["y", "rm", "rv"], training_mode=1, momentum=0.9, epsilon=1e-5
    )
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "rm", "rv")]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", 1, ["N", c, 4, 4])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 9
    return model


def test_batch_norm_training_mode_outputs():
    model = _bn_training_model()
    module = reimport(model).train()
    x = rand(4, 3, 4, 4)
    y, rm, rv = module(torch.from_numpy(x))
    expected = run_ort(model, {"x": x})[0]  # ORT normalizes with batch statistics too
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rm.detach().numpy(), 0.1 * x.mean(axis=(0, 2, 3)), atol=1e-6)
    assert module.get_submodule("bn").num_batches_tracked.item() == 1
    assert rv is module.get_submodule("bn").running_var


@pytest.mark.parametrize("shape", [(2, 3, 10), (2, 4, 5, 6)])
def test_instance_norm_matches_ort(shape):
    x, scale, bias = rand(*shape), rand(shape[1]), rand(shape[1])
    inputs = [("x", x, False), ("scale", scale, True), ("bias", bias, True)]
    check_op("InstanceNormalization", inputs, {"epsilon": 1e-3}, dynamic=True, atol=1e-4)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm_matches_ort(opset):
    x = rand(2, 6, 4, 5)
    per = 3 if opset < 21 else 6  # opset 18 scales per group, 21 per channel
    inputs = [("x", x, False), ("scale", rand(per), True), ("bias", rand(per), True)]
    check_op("GroupNormalization", inputs, {"num_groups": 3}, opset=opset, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_layer_norm_with_dynamic_normalized_dims(axis):
    """A dim of the normalized shape unknown at build time (axis 0 covers the batch dim; the
    unknown-rank case is the same code): the dims are read from the input at run time."""
    x = rand(3, 4, 5)
    w_shape = (5,) if axis == -1 else x.shape[axis:]
    inputs = [("x", x, False), ("w", rand(*w_shape), True), ("b", rand(*w_shape), True)]
    check_op("LayerNormalization", inputs, {"axis": axis}, dynamic=True, atol=1e-5)
