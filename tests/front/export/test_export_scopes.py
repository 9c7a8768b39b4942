"""Unit tests of the export helpers that need no exporter: scope parsing and proto fix-ups."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from qdqforge.front.export import fixups
from qdqforge.front.export.scopes import ScopeIndex, dynamo_module, unqualified

MODULES = {
    "", "layer2", "layer2.0", "layer2.0.downsample", "layer2.0.downsample.0", "shared",
    "block_1", "block_1.conv", "encoder", "encoder.layers", "encoder.layers.0",
    "encoder.layers.0.self_attn",
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "segment"),
    [("layer2.0.downsample.0", "downsample.0"), ("encoder.layers.0", "layers.0"),
     ("layer1.0", "layer1.0"), ("fc", "fc"), ("0.1", "0.1")],
)  # fmt: skip
def test_unqualified_matches_torchscript_segments(name, segment):
    assert unqualified(name) == segment


@pytest.mark.parametrize(
    ("node_name", "module"),
    [
        ("/layer2/layer2.0/downsample/downsample.0/Conv", "layer2.0.downsample.0"),
        ("/encoder/layers.0/self_attn/MatMul_1", "encoder.layers.0.self_attn"),
        ("/Relu", ""),
        ("/shared/Conv", "shared"),
        ("/shared_1/Conv", "shared"),  # second call of the same module
        ("/block_1/conv/Conv", "block_1.conv"),  # a real "_1" name is not a call suffix
        ("/layer2/unknown/Add", "layer2"),  # stop at the deepest known module
        ("Identity_3", None),  # exporter helper nodes carry no scope
    ],
)
def test_torchscript_scope_paths_resolve_to_modules(node_name, module):
    assert ScopeIndex(MODULES).resolve(node_name) == module


@pytest.mark.parametrize(
    ("scopes", "module"),
    [
        (
            "['', 'layer2', 'layer2.0', 'layer2.0.downsample.0', 'conv2d_5']",
            "layer2.0.downsample.0",
        ),
        ("['', 'relu']", ""),
        ("['', 'layer2', 'not_a_module', 'add']", "layer2"),
        ("not a python literal [", None),
        (None, None),
    ],
)
def test_dynamo_name_scopes_resolve_to_modules(scopes, module):
    props = {} if scopes is None else {"pkg.torch.onnx.name_scopes": scopes}
    assert dynamo_module(props, MODULES) == module


def dropout_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Constant", [], ["ratio"], value_float=0.3, name="ratio_c"),
        helper.make_node("Constant", [], ["train"], value_int=1, name="train_c"),
        helper.make_node("Cast", ["train"], ["train_b"], to=TensorProto.BOOL, name="cast"),
        helper.make_node("Dropout", ["x", "ratio", "train_b"], ["y", "mask"], name="drop"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dropout_loses_training_mode_and_keeps_ratio():
    model = dropout_model()
    assert fixups.dropout_to_inference(model) == 1
    drop = next(n for n in model.graph.node if n.op_type == "Dropout")
    assert list(drop.input) == ["x", "ratio"]
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x)  # identity in inference


def test_rename_outputs_gives_passthrough_outputs_their_own_tensor():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fixups.rename_outputs(model, ["output_0", "output_1"])
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    r, x = session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})
    assert r.tolist() == [0.0, 2.0] and x.tolist() == [-1.0, 2.0]


def test_uniquify_names_empty_and_duplicate_nodes_deterministically():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="n"),
        helper.make_node("Relu", ["a"], ["b"], name="n"),
        helper.make_node("Relu", ["b"], ["c"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model = helper.make_model(graph)
    assert fixups.uniquify_node_names(model) == 2
    assert [n.name for n in model.graph.node] == ["n", "n_1", "Relu_2"]


def test_dropout_rewrite_removes_the_dead_training_mode_chain():
    model = dropout_model()
    fixups.dropout_to_inference(model)
    assert [n.name for n in model.graph.node] == ["ratio_c", "drop"]
