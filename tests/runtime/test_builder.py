"""reimport(): coverage errors, naming, outputs, folding, inference fallbacks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from qdqforge.errors import ConversionError, GraphError, UnsupportedOpsError
from qdqforge.runtime import registry, reimport
from tests.helpers.ortcheck import assert_matches_ort, rand


def _model(nodes, inputs=("x",), outputs=("y",), inits=(), opset=17, domains=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        list(inits),
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


def test_unsupported_ops_are_reported_together():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("FancyOp", ["a"], ["b"], name="fancy_1"),
        helper.make_node("FancyOp", ["b"], ["c"], name="fancy_2"),
        helper.make_node("Mystery", ["c"], ["y"], name="mystery_1", domain="com.acme"),
    ]
    with pytest.raises(UnsupportedOpsError) as info:
        reimport(_model(nodes, domains=("com.acme",)))
    table = {(r["domain"], r["op"]): r for r in info.value.table}
    assert table[("ai.onnx", "FancyOp")]["count"] == 2
    assert table[("ai.onnx", "FancyOp")]["nodes"] == ["fancy_1", "fancy_2"]
    assert table[("com.acme", "Mystery")]["nodes"] == ["mystery_1"]
    assert "FancyOp" in str(info.value) and "Mystery" in str(info.value)
    assert "fancy_1, fancy_2" in str(info.value)


def test_cycle_is_a_graph_error():
    nodes = [
        helper.make_node("Relu", ["y"], ["a"], name="r1"),
        helper.make_node("Relu", ["a"], ["y"], name="r2"),
    ]
    with pytest.raises(GraphError, match="r1"):
        reimport(_model(nodes, inputs=()))


def test_bad_attribute_names_the_node():
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="up", mode="cubic")
    scales = numpy_helper.from_array(np.array([1, 2], np.float32), "s")
    with pytest.raises(ConversionError, match=r"'up'.*cubic"):
        reimport(_model([node], inits=[scales]))


def test_unproduced_output_read_names_both_nodes():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop"),
        helper.make_node("Cast", ["mask"], ["y"], name="use_mask", to=1),
    ]
    with pytest.raises(ConversionError, match=r"use_mask.*drop"):
        reimport(_model(nodes))


def test_every_registered_op_resolves_for_opsets_17_to_21():
    ops = {k.op_type for k in registry.registered() if not k.domain}
    since = {"Gelu": 20, "Mish": 18, "GroupNormalization": 18}
    for op in ops:
        for opset in range(max(17, since.get(op, 17)), 22):
            assert registry.resolve(op, "", opset) is not None, (op, opset)


def test_multiple_outputs_return_a_tuple_and_inputs_keep_order():
    nodes = [
        helper.make_node("Sub", ["b::in", "a.in"], ["y1"]),
        helper.make_node("Relu", ["a.in"], ["y2"]),
    ]
    module = reimport(_model(nodes, inputs=("b::in", "a.in"), outputs=("y1", "y2")))
    names = [n.name for n in module.graph.nodes if n.op == "placeholder"]
    assert names == ["b__in", "a_in"]
    out = module(torch.ones(1, 4), torch.full((1, 4), 3.0))
    assert isinstance(out, tuple) and out[0][0, 0].item() == -2.0 and out[1][0, 0] == 3.0


def test_parameter_paths_follow_names_and_sanitize_others():
    inits = [
        numpy_helper.from_array(rand(4), n)
        for n in ("enc.layer.0.w", "onnx::Mul_7", "enc.layer", "1bad name")
    ]
    nodes = [
        helper.make_node("Mul", ["x", inits[0].name], ["a"]),
        helper.make_node("Mul", ["a", "onnx::Mul_7"], ["b"]),
        helper.make_node("Add", ["b", "enc.layer"], ["c"]),
        helper.make_node("Add", ["c", "1bad name"], ["y"]),
    ]
    module = reimport(_model(nodes, inits=inits))
    mapping = module.onnx_mapping
    assert mapping["enc.layer.0.w"] == "enc.layer.0.w"
    assert mapping["onnx::Mul_7"] == "onnx_initializers.onnx__Mul_7"
    assert mapping["enc.layer"].startswith("onnx_initializers.")  # "enc.layer" is a module
    assert mapping["1bad name"] == "onnx_initializers._1bad_name"
    assert sorted(dict(module.named_parameters())) == sorted(mapping.values())


def test_constants_are_non_persistent_and_shape_chains_fold():
    shape = helper.make_node("Shape", ["w"], ["s"])
    nodes = [shape, helper.make_node("Reshape", ["x", "s"], ["y"])]
    w = numpy_helper.from_array(rand(2, 2), "w")
    model = _model(nodes, inits=[w])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    module = reimport(model)
    assert module.state_dict().keys() == {"w"}  # foreign file: float tensor -> parameter
    assert [n.target for n in module.graph.nodes if n.op == "call_method"] == ["reshape"]
    assert [n for n in module.graph.nodes if n.op == "call_function"] == []


def test_survives_failed_shape_inference(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("inference exploded")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", broken)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Softmax", ["f"], ["y"], axis=-1),
    ]
    assert_matches_ort(_model(nodes), {"x": rand(3, 4)})


def test_reimport_from_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])]), path)
    for source in (path, str(path)):
        assert torch.equal(
            reimport(source)(torch.tensor([[-1.0, 2, 3, 4]])), torch.tensor([[0.0, 2, 3, 4]])
        )


def test_onnx_mapping_lists_initializers_not_folded_constants():
    nodes = [
        helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0, 3.0, 4.0]),
        helper.make_node("Mul", ["x", "c"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["y"]),
    ]
    bias = numpy_helper.from_array(rand(4), "bias")
    module = reimport(_model(nodes, inits=[bias]))
    assert module.onnx_mapping == {"bias": "bias"}
    torch.testing.assert_close(
        module(torch.ones(1, 4)), torch.tensor([[1.0, 2, 3, 4]]) + module.bias.detach()
    )
