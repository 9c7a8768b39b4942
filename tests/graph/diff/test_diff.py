"""graph.diff: exact added/removed/changed sets, matching keys, provenance, initializers, IO."""

from __future__ import annotations

import onnx
import pytest
from onnx import helper

from qdqforge.graph import io
from qdqforge.graph.diff.graph_diff import diff_graphs
from tests.helpers import diff_cases as cases
from tests.helpers import onnx_graphs as g


def test_fold_bn_diff_sets():
    before, after = cases.fold_bn_pair()
    diff = diff_graphs(before, after)
    assert diff.added_names == set()
    assert diff.removed_names == {"bn/bn"}
    assert diff.changed_names == {"conv/op"}
    assert diff.unchanged == 1  # relu
    assert diff.op_deltas() == {"BatchNormalization": -1}
    assert diff.io == ()


def test_fold_bn_conv_change_is_provenance_matched_with_folded_initializers():
    diff = diff_graphs(*cases.fold_bn_pair())
    (conv,) = diff.changed
    assert conv.matched_by == "provenance"
    assert conv.b.provenance.describe() == (
        "created by pass fold_bn, rule fold_into_conv, from nodes conv/op, bn/bn"
    )
    assert [(c.index, c.a, c.b) for c in conv.inputs] == [
        (1, "conv.weight", "conv.folded_weight"),
        (2, "conv.bias", "conv.folded_bias"),
    ]
    assert conv.outputs_changed and conv.b.outputs == ("b",)
    weight, bias = conv.initializers
    assert (weight.shape_a, weight.shape_b) == ((6, 4, 3, 3), (6, 4, 3, 3))
    assert weight.dtype_b == "float32"
    assert weight.max_abs > 0 and bias.max_abs > 0


def test_fold_bn_initializer_section():
    inits = diff_graphs(*cases.fold_bn_pair()).initializers
    assert {t.name for t in inits.added} == {"conv.folded_weight", "conv.folded_bias"}
    assert {t.name for t in inits.removed} == {
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
    }
    assert inits.changed == () and inits.unchanged == 0


def test_fold_bn_gemm_through_default_pipeline():
    from qdqforge.passes.infra.pipeline import rewrite

    before = g.gemm_bn_model()
    diff = diff_graphs(before, rewrite(before))
    assert (diff.added_names, diff.removed_names, diff.changed_names) == (
        set(),
        {"bn/bn"},
        {"fc/gemm"},
    )
    (gemm,) = diff.changed
    assert [(c.name, c.a, c.b) for c in gemm.attrs] == [("beta", "2", "1")]


def test_qdq_insertion_diff_sets():
    diff = diff_graphs(*cases.qdq_pair())
    assert diff.added_names == {"x/QuantizeLinear", "x/DequantizeLinear"}
    assert diff.removed_names == set()
    assert diff.changed_names == {"conv"}
    assert diff.unchanged == 1
    (conv,) = diff.changed
    assert conv.matched_by == "name"
    assert [(c.index, c.a, c.b) for c in conv.inputs] == [(0, "x", "x/dq")]
    assert not conv.outputs_changed and conv.initializers == ()
    added = {n.name: n for n in diff.added}
    assert added["x/QuantizeLinear"].provenance.describe() == (
        "created by pass insert_qdq, rule activation_edge, from node conv"
    )
    assert {t.name for t in diff.initializers.added} == {"x/scale", "x/zero_point"}
    assert diff.op_deltas() == {"QuantizeLinear": 1, "DequantizeLinear": 1}


def test_neighbourhood_is_changed_nodes_plus_one_hop():
    fold = diff_graphs(*cases.fold_bn_pair()).neighbourhood
    assert {(n.name, n.status) for n in fold.nodes} == {
        ("conv/op", "changed"),
        ("bn/bn", "removed"),
        ("relu", "context"),
    }
    qdq = diff_graphs(*cases.qdq_pair()).neighbourhood
    assert sorted(n.status for n in qdq.nodes) == ["added", "added", "changed", "context"]
    names = {n.id: n.name for n in qdq.nodes}
    edges = {(names[s], names[d]) for s, d in qdq.edges}
    assert ("x/DequantizeLinear", "conv") in edges and ("conv", "relu") in edges


def test_identical_graphs_have_an_empty_diff():
    model = g.conv_bn_model()
    diff = diff_graphs(model, model)
    assert (diff.added, diff.removed, diff.changed, diff.io) == ((), (), (), ())
    assert diff.unchanged == 3 and diff.neighbourhood.nodes == ()


def _strip_names(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        node.name = ""
    return copy


def test_unnamed_nodes_match_by_output_names():
    model = _strip_names(cases.conv_relu_model())
    diff = diff_graphs(model, model)
    assert diff.unchanged == 2 and not diff.added and not diff.removed


def _chain(prefix: str) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], [f"{prefix}1"], name=f"{prefix}/relu"),
        helper.make_node("Sigmoid", [f"{prefix}1"], ["y"], name=f"{prefix}/sigmoid"),
    ]
    return g.make_model(nodes, [g.tensor_info("x", [2])], [g.tensor_info("y", [2])])


def test_renamed_nodes_and_tensors_match_by_structure():
    diff = diff_graphs(_chain("a"), _chain("b"))
    assert not diff.added and not diff.removed
    assert {(c.a.name, c.b.name, c.matched_by) for c in diff.changed} == {
        ("a/relu", "b/relu", "structure"),
        ("a/sigmoid", "b/sigmoid", "outputs"),  # both write the graph output "y"
    }


def test_io_changes():
    before = cases.conv_relu_model()
    after = onnx.ModelProto()
    after.CopyFrom(before)
    after.graph.output.append(g.tensor_info("c", [None] * 4))
    after.graph.input[0].CopyFrom(g.tensor_info("x", [1, 4, 6, 6]))
    diff = diff_graphs(before, after)
    assert {(c.kind, c.change, c.name) for c in diff.io} == {
        ("input", "changed", "x"),
        ("output", "added", "c"),
    }


def test_accepts_paths_and_graphs(tmp_path):
    before, after = cases.fold_bn_pair()
    path = tmp_path / "before.onnx"
    onnx.save(before, path)
    diff = diff_graphs(path, io.from_proto(after))
    assert (diff.a.name, diff.b.name) == ("before.onnx", "B")
    assert diff.removed_names == {"bn/bn"}


def test_missing_file_is_a_graph_error(tmp_path):
    from qdqforge.errors import GraphError

    with pytest.raises(GraphError, match=r"missing\.onnx"):
        diff_graphs(tmp_path / "missing.onnx", cases.conv_relu_model())


def test_stale_provenance_stamp_does_not_disturb_name_matching():
    _, after = cases.fold_bn_pair()
    diff = diff_graphs(after, after)  # the fold_bn stamp sits on both sides
    assert (diff.added, diff.removed, diff.changed) == ((), (), ())
    assert diff.unchanged == 2


def test_provenance_origin_still_in_b_is_not_claimed():
    before, after = cases.qdq_pair()
    for node in after.graph.node:
        if node.name == "x/QuantizeLinear":
            for prop in node.metadata_props:
                if prop.key == "qdqforge.action":
                    prop.value = "replace"  # claims "conv", which B still has
    diff = diff_graphs(before, after)
    assert diff.added_names == {"x/QuantizeLinear", "x/DequantizeLinear"}
    assert [(c.b.name, c.matched_by) for c in diff.changed] == [("conv", "name")]
