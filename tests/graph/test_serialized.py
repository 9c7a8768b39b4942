"""A graph written in parts (``graph.serialized``) is the file ``SerializeToString`` makes, byte
for byte, and the parts hold the graph's arrays themselves, not copies."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from qdqforge.graph import external, io, serialized
from qdqforge.graph.detached import materialize
from qdqforge.graph.serialized import _varint

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_]


def _model() -> onnx.ModelProto:
    """Large initializers of every dtype (one non-contiguous once loaded), a small one, node,
    graph and model metadata, doc strings and value_info."""
    rng = np.random.default_rng(0)
    inits, nodes, outputs = [], [], []
    for i, dtype in enumerate(DTYPES):
        values = (rng.standard_normal((40, 70)) * 50).astype(dtype)
        inits.append(numpy_helper.from_array(values, f"w{i}"))
        nodes.append(helper.make_node("Identity", [f"w{i}"], [f"out{i}"], name=f"id{i}"))
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        outputs.append(helper.make_tensor_value_info(f"out{i}", elem, [40, 70]))
    inits.append(numpy_helper.from_array(np.arange(3, dtype=np.float32), "small"))
    nodes.append(helper.make_node("Add", ["x", "small"], ["y"], name="add", doc_string="adds"))
    outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        outputs,
        inits,
        doc_string="a graph",
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.doc_string = "a model"
    model.metadata_props.add(key="k", value="v")
    model.graph.node[0].metadata_props.add(key="qdqforge.module", value="m")
    return model


@pytest.fixture
def graph():
    graph = io.from_proto(_model())
    materialize(graph)
    tensors = graph.gs.tensors()
    tensors["w0"].values = np.asfortranarray(tensors["w0"].values)  # not C-contiguous
    return graph


def test_parts_are_the_serialized_proto(graph):
    written = serialized.graph_serialized(graph)
    assert sum(isinstance(p, np.ndarray) for p in written.parts) == len(DTYPES)
    assert written.tobytes() == io.to_proto(graph).SerializeToString()


def test_saved_file_is_the_serialized_proto_and_runs(graph, tmp_path):
    path = io.save(graph, tmp_path / "m.onnx")
    assert path.read_bytes() == io.to_proto(graph).SerializeToString()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": np.ones(3, np.float32)})
    want = [graph.gs.tensors()[f"w{i}"].values for i in range(len(DTYPES))]
    for value, expected in zip(got, want):
        np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(got[-1], [1, 2, 3])


def test_parts_share_the_graph_arrays(graph):
    _, arrays, _ = external.external_size(graph)
    written = serialized.graph_serialized(graph)
    views = [p for p in written.parts if isinstance(p, np.ndarray)]
    shared = [any(np.shares_memory(v, a) for v in views) for a in arrays.values()]
    contiguous = [a.flags.c_contiguous for a in arrays.values()]
    assert shared == contiguous  # only the Fortran-ordered array is copied
    assert contiguous.count(False) == 1


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31 - 1, 2**35 + 5])
def test_varint_is_protobufs(value):
    message = TensorProto(dims=[value])  # packed repeated int64: tag, length, varint
    assert message.SerializeToString().endswith(_varint(value))
