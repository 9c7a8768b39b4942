"""Synthetic deep ONNX graphs for scaling measurements (built directly with onnx.helper)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def deep_conv_model(blocks: int, channels: int = 4) -> onnx.ModelProto:
    """``blocks`` x (Conv -> BatchNormalization -> Relu -> Add residual -> Identity): 5 nodes each,
    plus one Constant per block, so ~6 nodes per block before canonicalize."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "input"
    for i in range(blocks):
        p = f"block{i}"
        inits += [
            numpy_helper.from_array(
                rng.normal(size=(channels, channels, 1, 1)).astype(np.float32), f"{p}.conv.weight"
            ),
            *[
                numpy_helper.from_array(v.astype(np.float32), f"{p}.bn.{k}")
                for k, v in (
                    ("weight", rng.uniform(0.5, 1.5, channels)),
                    ("bias", rng.normal(size=channels) * 0.1),
                    ("running_mean", rng.normal(size=channels) * 0.1),
                    ("running_var", rng.uniform(0.5, 1.5, channels)),
                )
            ],
        ]
        bn_in = [
            f"{p}.c",
            *(f"{p}.bn.{k}" for k in ("weight", "bias", "running_mean", "running_var")),
        ]
        nodes += [
            helper.make_node("Conv", [x, f"{p}.conv.weight"], [f"{p}.c"], name=f"{p}/conv"),
            helper.make_node("BatchNormalization", bn_in, [f"{p}.b"], name=f"{p}/bn"),
            helper.make_node("Relu", [f"{p}.b"], [f"{p}.r"], name=f"{p}/relu"),
            helper.make_node(
                "Constant",
                [],
                [f"{p}.k"],
                name=f"{p}/const",
                value=numpy_helper.from_array(np.float32(0.5)),
            ),
            helper.make_node("Mul", [f"{p}.r", f"{p}.k"], [f"{p}.m"], name=f"{p}/mul"),
            helper.make_node("Add", [f"{p}.m", x], [f"{p}.a"], name=f"{p}/add"),
            helper.make_node("Identity", [f"{p}.a"], [f"{p}.out"], name=f"{p}/identity"),
        ]
        x = f"{p}.out"
    graph = helper.make_graph(
        nodes,
        "deep",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, 4, 4])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", channels, 4, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model
