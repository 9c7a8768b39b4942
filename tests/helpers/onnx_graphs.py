"""Tiny ONNX graphs built in code for pass and graph tests (no files, no downloads)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 20


def make_model(nodes, inputs, outputs, initializers=(), opset=OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def tensor_info(name: str, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def identity_model(arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A model returning each of ``arrays`` (its initializers, in order) through an Identity
    as ``<name>_out``."""
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in arrays]
    outputs = [
        tensor_info(f"{n}_out", None, helper.np_dtype_to_tensor_dtype(a.dtype))
        for n, a in arrays.items()
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    return helper.make_model(helper.make_graph(nodes, "g", [], outputs, inits))


def bn_params(prefix: str, channels: int, rng: np.random.Generator):
    return [
        init(f"{prefix}.weight", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
        init(f"{prefix}.bias", rng.normal(size=channels).astype(np.float32)),
        init(f"{prefix}.running_mean", rng.normal(size=channels).astype(np.float32)),
        init(f"{prefix}.running_var", rng.uniform(0.5, 2.0, channels).astype(np.float32)),
    ]


def bn_node(x: str, prefix: str, out: str, eps: float = 1e-5):
    names = [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var")]
    return helper.make_node(
        "BatchNormalization", [x, *names], [out], name=f"{prefix}/bn", epsilon=eps
    )


def conv_bn_model(*, transpose: bool = False, groups: int = 1, bias: bool = True, seed: int = 0):
    """x[N,4,6,6] -> Conv or ConvTranspose (groups) -> BN -> Relu -> y."""
    rng = np.random.default_rng(seed)
    cin, cout = 4, 6
    shape = (cin, cout // groups, 3, 3) if transpose else (cout, cin // groups, 3, 3)
    inits = [init("conv.weight", rng.normal(size=shape).astype(np.float32))]
    inputs = ["x", "conv.weight"]
    if bias:
        inits.append(init("conv.bias", rng.normal(size=cout).astype(np.float32)))
        inputs.append("conv.bias")
    op = "ConvTranspose" if transpose else "Conv"
    conv = helper.make_node(op, inputs, ["c"], name="conv/op", pads=[1, 1, 1, 1], group=groups)
    nodes = [conv, bn_node("c", "bn", "b"), helper.make_node("Relu", ["b"], ["y"], name="relu")]
    return make_model(
        nodes,
        [tensor_info("x", ["N", cin, 6, 6])],
        [tensor_info("y", [None] * 4)],
        [*inits, *bn_params("bn", cout, rng)],
    )


def gemm_bn_model(*, trans_b: int = 1, seed: int = 0):
    """x[N,5] -> Gemm -> BatchNormalization -> y."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 5) if trans_b else (5, 3)).astype(np.float32)
    inits = [init("fc.weight", w), init("fc.bias", rng.normal(size=3).astype(np.float32))]
    gemm = helper.make_node(
        "Gemm",
        ["x", "fc.weight", "fc.bias"],
        ["g"],
        name="fc/gemm",
        transB=trans_b,
        alpha=0.5,
        beta=2.0,
    )
    return make_model(
        [gemm, bn_node("g", "bn", "y")],
        [tensor_info("x", ["N", 5])],
        [tensor_info("y", [None] * 2)],
        [*inits, *bn_params("bn", 3, rng)],
    )


def float_conv_model(channels: int = 64):
    """``(model, feeds)``: Conv (147 KB of float weights, over ``IN_MEMORY_BYTES``) + Relu."""
    rng = np.random.default_rng(3)
    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [2, channels, 8, 8])
    y = onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, None)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)  # 147 KB
    b = rng.standard_normal(channels).astype(np.float32)
    nodes = [
        onnx.helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["c"], ["output"]),
    ]
    inits = [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")]
    graph = onnx.helper.make_graph(nodes, "g", [x], [y], inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    feeds = {"input": rng.standard_normal((2, channels, 8, 8)).astype(np.float32)}
    return model, feeds
