"""fold_bn: stats, structure, onnx.checker and onnxruntime equality before vs after."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from qdqforge.graph import io, numerics
from qdqforge.graph.check import check_proto
from qdqforge.passes import get_pass
from tests.helpers import onnx_graphs as g

CASES = {
    "conv": lambda: g.conv_bn_model(),
    "conv_no_bias": lambda: g.conv_bn_model(bias=False),
    "conv_grouped": lambda: g.conv_bn_model(groups=2),
    "convtranspose": lambda: g.conv_bn_model(transpose=True),
    "convtranspose_grouped": lambda: g.conv_bn_model(transpose=True, groups=2),
    "gemm_transB": lambda: g.gemm_bn_model(trans_b=1),
    "gemm_noTransB": lambda: g.gemm_bn_model(trans_b=0),
}


def _input_for(model, rng):
    shape = [d.dim_value or 3 for d in model.graph.input[0].type.tensor_type.shape.dim]
    return rng.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_fold_bn_preserves_outputs(case):
    model = CASES[case]()
    x = _input_for(model, np.random.default_rng(1))
    before = numerics.run(model, {"x": x})

    result = get_pass("fold_bn")()(io.load(model))

    assert result.stats["bn_folded"] == 1
    assert result.modified
    after_proto = io.to_proto(result.graph)
    ops = [n.op_type for n in after_proto.graph.node]
    assert "BatchNormalization" not in ops
    check_proto(after_proto)
    after = numerics.run(after_proto, {"x": x})
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_folded_tensors_get_new_names_and_provenance():
    result = get_pass("fold_bn")()(io.load(g.conv_bn_model()))
    conv = next(n for n in result.graph.gs.nodes if n.op == "Conv")
    assert [t.name for t in conv.inputs[1:]] == ["conv.folded_weight", "conv.folded_bias"]
    meta = result.graph.node_meta[conv.name]
    assert meta["qdqforge.pass"] == "fold_bn"
    assert meta["qdqforge.from"] == "conv/op,bn/bn"
    assert "conv.folded_weight" in result.graph.parameters
    saved = io.to_proto(result.graph)
    props = {p.key: p.value for p in saved.graph.node[0].metadata_props}
    assert props["qdqforge.rule"] == "fold_into_conv"


def test_skip_layers_from_options():
    graph = io.load(g.conv_bn_model())
    graph.meta(graph.gs.nodes[0])["qdqforge.module"] = "conv"
    result = get_pass("fold_bn")({"skip_layers": ["conv"]})(graph)
    assert result.stats == {"bn_folded": 0, "skipped_by_config": 1, "not_foldable": 0}
    assert not result.modified


def test_bn_with_second_consumer_of_conv_output_is_not_folded():
    model = g.conv_bn_model()
    extra = g.helper.make_node("Relu", ["c"], ["c2"], name="side")
    model.graph.node.append(extra)
    model.graph.output.append(g.tensor_info("c2", [None] * 4))
    result = get_pass("fold_bn")()(io.load(model))
    assert result.stats["not_foldable"] == 1
    assert result.stats["bn_folded"] == 0


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_folded_weight_is_the_float64_product_rounded_once(case):
    """W' = float32(float64(W) * s) per output channel, bit for bit (the pass computes it
    through the ufunc's buffers, without a float64 copy of the weight)."""
    model = CASES[case]()
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layer = next(n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm"))
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    gamma, _, _, var = (inits[name].astype(np.float64) for name in bn.input[1:5])
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(var + eps)
    attrs = {a.name: a.i for a in layer.attribute if a.type == onnx.AttributeProto.INT}
    weight = inits[layer.input[1]].astype(np.float64)
    if layer.op_type == "Conv":
        want = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
    elif layer.op_type == "Gemm":
        want = weight * (scale[:, None] if attrs.get("transB", 0) else scale[None, :])
    else:
        groups, (cin, cout_g) = attrs.get("group", 1), weight.shape[:2]
        grouped = weight.reshape(groups, cin // groups, cout_g, *weight.shape[2:])
        per = scale.reshape(groups, 1, cout_g, *[1] * (weight.ndim - 2))
        want = (grouped * per).reshape(weight.shape)
    folded = io.to_proto(get_pass("fold_bn")()(io.load(model)).graph)
    (got,) = [
        numpy_helper.to_array(t) for t in folded.graph.initializer if "folded_weight" in t.name
    ]
    assert got.dtype == np.float32 and got.tobytes() == want.astype(np.float32).tobytes()
