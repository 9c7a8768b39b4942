"""Known rewrites with known diffs, shared by the graph-diff tests and the browser test."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qdqforge.passes.infra.pipeline import rewrite
from tests.helpers import onnx_graphs as g


def fold_bn_pair() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Conv -> BN -> Relu before, Conv(folded) -> Relu after (the real fold_bn pass)."""
    before = g.conv_bn_model()
    return before, rewrite(before, ("fold_bn",))


def conv_relu_model() -> onnx.ModelProto:
    """x[N,4,6,6] -> Conv "conv" -> Relu "relu" -> y."""
    rng = np.random.default_rng(0)
    conv = helper.make_node(
        "Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv", pads=[1, 1, 1, 1]
    )
    relu = helper.make_node("Relu", ["c"], ["y"], name="relu")
    return g.make_model(
        [conv, relu],
        [g.tensor_info("x", ["N", 4, 6, 6])],
        [g.tensor_info("y", [None] * 4)],
        [
            g.init("conv.weight", rng.normal(size=(6, 4, 3, 3)).astype(np.float32)),
            g.init("conv.bias", rng.normal(size=6).astype(np.float32)),
        ],
    )


def qdq_pair() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Hand-made QDQ insertion on the Conv's activation input, stamped like insert_qdq would."""
    before = conv_relu_model()
    after = onnx.ModelProto()
    after.CopyFrom(before)
    q = helper.make_node(
        "QuantizeLinear", ["x", "x/scale", "x/zero_point"], ["x/q"], name="x/QuantizeLinear"
    )
    dq = helper.make_node(
        "DequantizeLinear", ["x/q", "x/scale", "x/zero_point"], ["x/dq"], name="x/DequantizeLinear"
    )
    for node in (q, dq):
        for key, value in (
            ("qdqforge.pass", "insert_qdq"),
            ("qdqforge.rule", "activation_edge"),
            ("qdqforge.from", "conv"),
            ("qdqforge.action", "create"),
        ):
            node.metadata_props.add(key=key, value=value)
    after.graph.node[0].input[0] = "x/dq"
    nodes = [q, dq, *after.graph.node]
    del after.graph.node[:]
    after.graph.node.extend(nodes)
    after.graph.initializer.extend(
        [
            helper.make_tensor("x/scale", TensorProto.FLOAT, [], [0.05]),
            helper.make_tensor("x/zero_point", TensorProto.INT8, [], [0]),
        ]
    )
    return before, after


def input_for(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """Random feed for the single graph input (symbolic dims become 2)."""
    vi = model.graph.input[0]
    shape = [d.dim_value or 2 for d in vi.type.tensor_type.shape.dim]
    return {vi.name: np.random.default_rng(seed).normal(size=shape).astype(np.float32)}


def perturbed(model: onnx.ModelProto, name: str, delta: float) -> onnx.ModelProto:
    """Copy of ``model`` with ``delta`` added to the first element of initializer ``name``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for i, t in enumerate(copy.graph.initializer):
        if t.name == name:
            value = numpy_helper.to_array(t).copy()
            value.flat[0] += delta
            copy.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
    return copy
