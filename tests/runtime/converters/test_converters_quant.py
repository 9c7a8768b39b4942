"""Q/DQ: Q->DQ fake-quant bit-exact with ORT, STE gradients, deploy-style DQ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from qdqforge.runtime import reimport
from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize
from tests.helpers.ortcheck import assert_matches_ort, check_op, rand, run_ort, with_roles

F32 = np.float32


def qdq_model(scale, zp, *, axis=1, opset=17, x_shape=(2, 3, 4)):
    inits = [numpy_helper.from_array(np.asarray(scale, F32), "x/scale")]
    names = ["x", "x/scale"]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "x/zero_point"))
        names.append("x/zero_point")
    nodes = [
        helper.make_node("QuantizeLinear", names, ["x/q"], name="x/QuantizeLinear", axis=axis),
        helper.make_node(
            "DequantizeLinear", ["x/q", *names[1:]], ["y"], name="x/Dequantize", axis=axis
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9 if opset < 21 else 10
    return model


def _x(scale=0.05):
    # includes exact .5 ties (half-to-even), values far outside the int8 range, and zeros
    ties = (np.arange(-6, 6) + 0.5) * scale
    rest = rand(2 * 3 * 4 - ties.size, low=-12, high=12)
    return np.concatenate([ties, rest]).astype(F32).reshape(2, 3, 4)


CASES = [
    ("int8_sym", 0.05, np.array(0, np.int8), 1),
    ("int8_zp", 0.05, np.array(-7, np.int8), 1),
    ("uint8", 0.05, np.array(128, np.uint8), 1),
    ("no_zp_uint8", 0.05, None, 1),
    ("per_axis1", [0.02, 0.05, 0.1], np.array([0, 3, -2], np.int8), 1),
    ("per_axis_last", [0.02, 0.05, 0.1, 0.2], np.zeros(4, np.int8), -1),
    ("per_axis_uint8", [0.02, 0.05, 0.1], np.array([120, 128, 130], np.uint8), 1),
]


@pytest.mark.parametrize("opset", [13, 17, 19, 21])
@pytest.mark.parametrize(("scale", "zp", "axis"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_qdq_matches_ort_exactly(scale, zp, axis, opset):
    model = qdq_model(scale, zp, axis=axis, opset=opset)
    module = assert_matches_ort(model, {"x": _x()}, atol=0.0)
    calls = [n.target for n in module.graph.nodes if n.op == "call_function"]
    assert calls == [fake_quantize]


def test_qdq_ste_gradient_inside_range_zero_outside():
    module = reimport(qdq_model(0.05, np.array(0, np.int8)))
    x = torch.tensor([[[0.1, -0.3, 6.0, -6.5]] * 3] * 2, requires_grad=True)  # range ±6.35
    grad = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) + 1
    module(x).backward(grad)
    inside = torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(2, 3, 4)
    torch.testing.assert_close(x.grad, grad * inside, rtol=0, atol=0)


def test_qdq_scale_trainable_when_marked_parameter():
    model = with_roles(qdq_model([0.02, 0.05, 0.1], np.zeros(3, np.int8)), params=["x/scale"])
    module = reimport(model)
    params = dict(module.named_parameters())
    assert list(params) == [module.onnx_mapping["x/scale"]]
    module(torch.randn(2, 3, 4)).pow(2).sum().backward()
    assert params[module.onnx_mapping["x/scale"]].grad.abs().sum() > 0


def test_quantize_linear_alone_matches_ort():
    inputs = [
        ("x", _x(), False),
        ("s", np.array(0.05, F32), True),
        ("z", np.array(3, np.int8), True),
    ]
    check_op("QuantizeLinear", inputs, atol=0)


@pytest.mark.parametrize("opset", [13, 21])
def test_deploy_dequantize_int8_weight_into_conv(opset):
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.integers(-128, 127, (4, 3, 3, 3)).astype(np.int8), "conv.w_q")
    s = numpy_helper.from_array(rng.uniform(0.001, 0.01, 4).astype(F32), "conv.w_scale")
    nodes = [
        helper.make_node("DequantizeLinear", ["conv.w_q", "conv.w_scale"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, s],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9 if opset < 21 else 10
    feeds = {"x": rand(1, 3, 5, 5)}
    module = assert_matches_ort(model, feeds)
    assert module.onnx_mapping["conv.w_q"]  # the int8 weight is a tensor of the module
    np.testing.assert_allclose(
        module(torch.from_numpy(feeds["x"])).detach().numpy(), run_ort(model, feeds)[0], atol=1e-5
    )


def test_q_read_by_two_dequantizers_stays_standalone():
    model = qdq_model(0.05, np.array(0, np.int8))
    extra = helper.make_node("DequantizeLinear", ["x/q", "x/scale", "x/zero_point"], ["y2"])
    model.graph.node.append(extra)
    model.graph.output.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, None))
    module = assert_matches_ort(model, {"x": _x()}, atol=0.0)
    assert fake_quantize not in [n.target for n in module.graph.nodes]


def test_weight_fake_quant_trains_the_weight():
    w = numpy_helper.from_array(rand(4, 3, 3, 3), "conv.weight")
    s = numpy_helper.from_array(np.full(4, 0.02, F32), "conv.weight/scale")
    zp = numpy_helper.from_array(np.zeros(4, np.int8), "conv.weight/zero_point")
    qargs = ["conv.weight/scale", "conv.weight/zero_point"]
    nodes = [
        helper.make_node("QuantizeLinear", ["conv.weight", *qargs], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", *qargs], ["wdq"], axis=0),
        helper.make_node("Conv", ["x", "wdq"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, s, zp],
    )
    model = with_roles(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
        params=["conv.weight", "conv.weight/scale"],
    )
    model.ir_version = 9
    module = assert_matches_ort(model, {"x": rand(2, 3, 5, 5)}, atol=1e-5)
    module(torch.randn(2, 3, 5, 5)).sum().backward()
    params = dict(module.named_parameters())
    assert params["conv.weight"].grad is not None and params["conv.weight"].grad.abs().sum() > 0
    assert params[module.onnx_mapping["conv.weight/scale"]].grad is not None
