"""graph/: toposort, invariant checks, naming and atomic/external-data io."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from qdqforge.errors import GraphError, OutputError
from qdqforge.graph import io, naming, numerics
from qdqforge.graph.check import validate
from qdqforge.graph.toposort import toposort
from tests.helpers import onnx_graphs as g


def _chain(order=("a", "b", "c")):
    nodes = {
        "a": helper.make_node("Relu", ["x"], ["t1"], name="a"),
        "b": helper.make_node("Neg", ["t1"], ["t2"], name="b"),
        "c": helper.make_node("Abs", ["t2"], ["y"], name="c"),
    }
    return g.make_model(
        [nodes[k] for k in order], [g.tensor_info("x", [3])], [g.tensor_info("y", [3])]
    )


def test_toposort_reorders_shuffled_nodes():
    graph = io.from_proto(_chain(("c", "a", "b")))
    toposort(graph)
    assert [n.name for n in graph.gs.nodes] == ["a", "b", "c"]


def test_cycle_is_a_graph_error_naming_the_nodes():
    model = _chain()
    model.graph.node[0].input[0] = "t2"  # a reads b's output: a -> b -> a
    graph = io.from_proto(model)
    with pytest.raises(GraphError, match="cycle") as info:
        toposort(graph)
    assert "a" in str(info.value) and "b" in str(info.value)


def test_duplicate_node_names_are_reported():
    model = _chain()
    model.graph.node[1].name = "a"
    with pytest.raises(GraphError, match="duplicate node names: 'a'"):
        validate(io.from_proto(model))


def test_dangling_input_is_reported():
    model = _chain()
    model.graph.node[2].input[0] = "nowhere"
    with pytest.raises(GraphError, match="undefined tensor 'nowhere'"):
        validate(io.from_proto(model))


def test_uniquify_renames_later_duplicates_deterministically():
    model = _chain()
    for node in model.graph.node:
        node.name = "n"
    graph = io.from_proto(model)
    assert naming.uniquify_node_names(graph) == 2
    assert [n.name for n in graph.gs.nodes] == ["n", "n_1", "n_2"]


def test_save_is_atomic_and_round_trips_metadata(tmp_path):
    graph = io.from_proto(_chain())
    graph.stamp(graph.gs.nodes[0], "unit", "rule", ["x_src"])
    path = io.save(graph, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp files left
    loaded = io.load(path)
    assert loaded.node_meta["a"]["qdqforge.pass"] == "unit"
    assert loaded.node_meta["a"]["qdqforge.from"] == "x_src"


def test_save_to_directory_path_is_refused(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        io.save(_chain(), tmp_path)


def test_external_data_above_threshold(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 1000)
    weight = g.init("w", np.arange(4096, dtype=np.float32).reshape(64, 64))
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = g.make_model(
        [node], [g.tensor_info("x", [1, 64])], [g.tensor_info("y", [1, 64])], [weight]
    )
    path = io.save(model, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size >= 4096 * 4
    assert model.graph.initializer[0].raw_data  # the caller's proto is not rewritten
    reloaded = onnx.load(path)
    x = np.ones((1, 64), np.float32)
    np.testing.assert_array_equal(numerics.run(reloaded, {"x": x})[0], x @ weight_array())


def weight_array():
    return np.arange(4096, dtype=np.float32).reshape(64, 64)
