"""Static shapes flow through qdqforge's observers (identities on input 0).

Regression: a Pad after an ActObserver lost its input rank (ONNX inference stops at an unknown
op), so ``quantize_model`` failed on EfficientNet-Lite0 ("needs constant pads and a known rank").
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from qdqforge.graph.shapes import infer_types
from qdqforge.runtime import reimport

OBSERVERS = {
    "ActObserver": {
        "layer": "conv",
        "algo": "ifmr",
        "num_bits": 8,
        "symmetric": 0,
        "batch_num": 1,
        "max_percentile": 0.999999,
        "min_percentile": 0.999999,
        "search_range": [0.7, 1.3],
        "search_step": 0.01,
    },
    "DmqObserver": {"layer": "conv", "alpha": 0.5, "channel_axis": 1},
}


def observed_pad_model(op: str) -> onnx.ModelProto:
    inputs = ["x", "w_max"] if op == "DmqObserver" else ["x"]
    weight_max = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    nodes = [
        helper.make_node("Constant", [], ["w_max"], value=weight_max),
        helper.make_node(op, inputs, ["x.observed"], domain="qdqforge", **OBSERVERS[op]),
        helper.make_node("Relu", ["x.observed"], ["r"]),
        helper.make_node("Pad", ["r", "pads"], ["y"], mode="constant"),
    ]
    inits = [helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 0, 0, 0, 2, 1])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("qdqforge", 1)]
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("op", list(OBSERVERS))
def test_pad_after_an_observer_knows_its_rank(op):
    model = observed_pad_model(op)
    assert infer_types(model)[0]["r"] == (None, 2, 4, 4)
    x = torch.randn(3, 2, 4, 4)
    with torch.no_grad():
        y = reimport(model)(x)
    want = np.pad(np.maximum(x.numpy(), 0), [(0, 0), (0, 0), (1, 2), (0, 1)])
    np.testing.assert_array_equal(y.numpy(), want)


@pytest.mark.parametrize(
    ("op", "outputs"),
    [("UlqActQuant", ["x.q", "scale"]), ("SearchN", ["x.q"]), ("ArqRetrainWeight", ["x.q", "s"])],
)
def test_shapes_flow_through_qat_nodes(op, outputs):
    """QAT fake-quant nodes are identities in shape on output 0 (Swin's Pad, MobileViT's
    Resize and ConvNeXt's LayerNorm after one lost their rank)."""
    nodes = [
        helper.make_node(op, ["x"], outputs, domain="qdqforge", layer="conv"),
        helper.make_node("Relu", ["x.q"], ["r"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4, 4])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("qdqforge", 1)]
    assert infer_types(helper.make_model(graph, opset_imports=opsets))[0]["r"] == (None, 2, 4, 4)


def test_declared_shapes_are_kept_where_inference_loses_them():
    """The exporter's value_info (a Reshape to a computed shape) survives the inference copy."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert infer_types(model)[0]["y"] == (None, 2, 4)
