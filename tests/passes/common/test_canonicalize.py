"""canonicalize: Constant lifting, Identity removal, constant folding, zero-bias dropping."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from qdqforge.graph import io, numerics
from qdqforge.graph.check import check_proto
from qdqforge.graph.meta import PARAMETERS, dump_names
from qdqforge.passes import get_pass
from tests.helpers import onnx_graphs as g


def _exported_style_conv_model():
    """What the dynamo exporter writes for Conv(bias=False): an Expand-of-zero bias."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Shape", ["conv.weight"], ["s"], name="shape", start=0, end=1),
        helper.make_node("Constant", [], ["one"], name="const_one", value_ints=[1]),
        helper.make_node("Expand", ["s", "one"], ["s2"], name="expand_shape"),
        helper.make_node(
            "Constant",
            [],
            ["zero"],
            name="const_zero",
            value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
        ),
        helper.make_node("CastLike", ["zero", "x"], ["zero_like"], name="castlike"),
        helper.make_node("Expand", ["zero_like", "s2"], ["bias"], name="expand_bias"),
        helper.make_node("Conv", ["x", "conv.weight", "bias"], ["c"], name="conv", pads=[1] * 4),
        helper.make_node("Identity", ["c"], ["c_id"], name="identity"),
        helper.make_node("Relu", ["c_id"], ["y"], name="relu"),
    ]
    weight = g.init("conv.weight", rng.normal(size=(5, 3, 3, 3)).astype(np.float32))
    model = g.make_model(
        nodes, [g.tensor_info("x", ["N", 3, 8, 8])], [g.tensor_info("y", [None] * 4)], [weight]
    )
    model.metadata_props.add(key=PARAMETERS, value=dump_names(["conv.weight"]))
    return model


def test_canonicalize_cleans_exporter_noise_and_keeps_outputs():
    model = _exported_style_conv_model()
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    before = numerics.run(model, {"x": x})

    result = get_pass("canonicalize")()(io.load(model))

    assert result.stats["constants_lifted"] == 2
    assert result.stats["identities_removed"] == 1
    assert result.stats["nodes_folded"] == 4  # Shape, Expand, CastLike, Expand
    assert result.stats["zero_biases_dropped"] == 1
    proto = io.to_proto(result.graph)
    assert [n.op_type for n in proto.graph.node] == ["Conv", "Relu"]
    assert [i.name for i in proto.graph.initializer] == ["conv.weight"]
    check_proto(proto)
    np.testing.assert_allclose(numerics.run(proto, {"x": x})[0], before[0], rtol=1e-6)


def test_parameters_are_never_folded():
    weight = g.init("fc.weight", np.ones((4, 3), np.float32))
    nodes = [
        helper.make_node("Transpose", ["fc.weight"], ["wt"], name="t", perm=[1, 0]),
        helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm"),
    ]
    model = g.make_model(
        nodes, [g.tensor_info("x", ["N", 3])], [g.tensor_info("y", ["N", 4])], [weight]
    )
    model.metadata_props.add(key=PARAMETERS, value=dump_names(["fc.weight"]))
    result = get_pass("canonicalize")()(io.load(model))
    assert result.stats["nodes_folded"] == 0
    assert [n.op for n in result.graph.gs.nodes] == ["Transpose", "MatMul"]


def test_identity_feeding_graph_output_is_kept():
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    model = g.make_model(nodes, [g.tensor_info("x", [2])], [g.tensor_info("y", [2])])
    result = get_pass("canonicalize")()(io.load(model))
    assert not result.modified
    assert [n.op for n in result.graph.gs.nodes] == ["Identity"]
