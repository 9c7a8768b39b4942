"""Sequence ops (SplitToSequence, SequenceAt, ConcatFromSequence, ...) against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers.ortcheck import assert_matches_ort, rand

I64 = np.int64


def seq_model(nodes, inits=(), n_out=1, shape=(2, 6, 3)) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape[1:]])
    outs = [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)]
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits]
    graph = helper.make_graph(nodes, "g", [x], outs, tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


SPLITS = [
    ("none_keepdims", None, {"axis": 1}, [0, -1]),
    ("none_squeezed", None, {"axis": 1, "keepdims": 0}, [2, 5]),
    ("scalar_uneven", np.array(4, I64), {"axis": 1}, [0, 1]),
    ("sizes", np.array([1, 2, 3], I64), {"axis": 1}, [2, -2]),
]


@pytest.mark.parametrize(
    ("split", "attrs", "positions"), [c[1:] for c in SPLITS], ids=[c[0] for c in SPLITS]
)
def test_split_to_sequence_then_sequence_at(split, attrs, positions):
    inits = [("pos0", np.array(positions[0], I64)), ("pos1", np.array(positions[1], I64))]
    inputs = ["x"] if split is None else ["x", "split"]
    if split is not None:
        inits.append(("split", split))
    nodes = [helper.make_node("SplitToSequence", inputs, ["s"], **attrs)]
    nodes += [helper.make_node("SequenceAt", ["s", f"pos{i}"], [f"y{i}"]) for i in range(2)]
    assert_matches_ort(seq_model(nodes, inits, 2), {"x": rand(2, 6, 3)})


@pytest.mark.parametrize("new_axis", [0, 1])
def test_concat_from_sequence_and_length(new_axis):
    nodes = [
        helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=1),
        helper.make_node("ConcatFromSequence", ["s"], ["y0"], axis=2, new_axis=new_axis),
        helper.make_node("SequenceLength", ["s"], ["y1"]),
    ]
    assert_matches_ort(seq_model(nodes, n_out=2), {"x": rand(2, 6, 3)})


def test_construct_insert_erase_at_runtime_position():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("SequenceEmpty", [], ["e"], dtype=TensorProto.FLOAT),
        helper.make_node("SequenceInsert", ["e", "x"], ["s1"]),
        helper.make_node("SequenceConstruct", ["x", "r"], ["s2"]),
        helper.make_node("SequenceInsert", ["s2", "r", "zero"], ["s3"]),
        helper.make_node("SequenceErase", ["s3", "one"], ["s4"]),
        helper.make_node("ConcatFromSequence", ["s4"], ["y0"], axis=0),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"]),  # a run-time position: N - 1
        helper.make_node("Sub", ["n", "one"], ["last"]),
        helper.make_node("SplitToSequence", ["x"], ["s5"], axis=0, keepdims=0),
        helper.make_node("SequenceAt", ["s5", "last"], ["y1"]),
        helper.make_node("SequenceLength", ["s1"], ["y2"]),
    ]
    inits = [("zero", np.array(0, I64)), ("one", np.array(1, I64))]
    assert_matches_ort(seq_model(nodes, inits, 3), {"x": rand(3, 6, 3)})
