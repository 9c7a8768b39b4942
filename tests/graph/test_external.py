"""Models over 2 GB written and read tensor by tensor (``graph.external``) and graphs handed to
the runtime without copying their weights (``graph.detached``).

The threshold for external data is lowered so that a small model takes the > 2 GB path; the
files must be the ones ``onnx.save_model(save_as_external_data=True)`` writes.
"""

from __future__ import annotations

import filecmp

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import qdqforge
from qdqforge.errors import GraphError
from qdqforge.graph import external, io, serialized
from qdqforge.graph.detached import is_placeholder, materialize, to_proto_detached
from qdqforge.graph.staged import StagedFiles
from qdqforge.runtime import reimport


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 300), torch.nn.ReLU(), torch.nn.Linear(300, 10)
    ).eval()
    return model, torch.randn(3, 256)


@pytest.fixture
def graph(net):
    graph = io.from_proto(qdqforge.rewrite(qdqforge.export(*net)))
    graph.gs.tensors()["0.weight"].values  # noqa: B018 (one array loaded, the rest lazy)
    return graph


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 1000)


def _without_location(path) -> bytes:
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "data"
    return proto.SerializeToString()


def test_graph_is_saved_as_onnx_saves_its_proto(graph, tmp_path, small_threshold):
    io.save(graph, tmp_path / "streamed.onnx")
    io.save(io.to_proto(graph), tmp_path / "proto.onnx")  # onnx.save_model's external data
    with StagedFiles() as staged:
        staged.add_model(graph, tmp_path / "staged.onnx")
        staged.commit()
    for name in ("streamed", "staged"):
        assert filecmp.cmp(tmp_path / f"{name}.onnx.data", tmp_path / "proto.onnx.data", False)
        assert _without_location(tmp_path / f"{name}.onnx") == _without_location(
            tmp_path / "proto.onnx"
        )
    assert (tmp_path / "proto.onnx.data").stat().st_size >= 300 * 256 * 4


def test_external_model_loads_into_arrays_like_onnx_load(graph, net, tmp_path, small_threshold):
    model, x = net
    io.save(graph, tmp_path / "m.onnx")
    loaded = io.load(tmp_path / "m.onnx")
    usual = io.from_proto(onnx.load(str(tmp_path / "m.onnx")))
    assert io.to_proto(loaded).SerializeToString() == io.to_proto(usual).SerializeToString()
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    want = model(x).detach().numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], want, atol=1e-5)


def test_data_location_outside_the_folder_is_refused(graph, tmp_path, small_threshold):
    io.save(graph, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    entry = next(e for e in proto.graph.initializer[0].external_data if e.key == "location")
    entry.value = "../m.onnx.data"
    (tmp_path / "bad.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(GraphError, match="not a file name beside the model"):
        io.load(tmp_path / "bad.onnx")


def test_detached_reimport_shares_the_graph_arrays(graph, net):
    model, x = net
    materialize(graph)
    proto, arrays = to_proto_detached(graph, min_bytes=4 * 300 * 10)
    assert set(arrays) == {"0.weight", "2.weight"}  # the biases stay in the proto
    assert proto.ByteSize() < 300 * 256 * 4
    module = reimport(proto, tensors=arrays)
    weight = dict(module.named_parameters())["0.weight"]
    assert weight.data_ptr() == arrays["0.weight"].ctypes.data
    torch.testing.assert_close(module(x), model(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(module(x), reimport(io.to_proto(graph))(x), rtol=0, atol=0)


def test_placeholder_without_its_arrays_fails_loudly(graph):
    materialize(graph)
    proto, _ = to_proto_detached(graph, min_bytes=1024)
    assert any(is_placeholder(t) for t in proto.graph.initializer)
    with pytest.raises(Exception, match=r"(?i)external"):
        onnxruntime.InferenceSession(proto.SerializeToString())


def test_graph_size_matches_its_proto(graph):
    _, _, size = external.external_size(graph)
    assert abs(size - io.to_proto(graph).ByteSize()) < 1024


def test_graph_serialized_are_the_exported_proto(graph):
    """One export (detached proto + its arrays) serializes to what ``to_proto`` writes."""
    materialize(graph)  # every tensor an array: the large ones are detached, then filled
    _, arrays, _ = external.external_size(graph)
    assert {"0.weight", "2.weight"} <= set(arrays)
    assert serialized.graph_serialized(graph).tobytes() == io.to_proto(graph).SerializeToString()


def test_graph_serialized_is_none_above_the_threshold(graph, monkeypatch):
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 1000)
    assert serialized.graph_serialized(graph) is None


def test_a_conv_graph_saves_the_same_bytes_either_way(tmp_path):
    from tests.helpers.onnx_graphs import float_conv_model

    graph = io.from_proto(float_conv_model()[0])
    materialize(graph)
    path = io.save(graph, tmp_path / "g.onnx")
    assert path.read_bytes() == io.to_proto(graph).SerializeToString()


def test_graph_serialized_of_a_graph_read_from_external_data(graph, tmp_path, monkeypatch):
    """Constants loaded from a ``.data`` file carry gs's data_location: the bytes stay
    ``to_proto``'s when the graph is saved whole again."""
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 1000)
    path = io.save(graph, tmp_path / "ext.onnx")
    monkeypatch.undo()
    loaded = io.load(str(path))
    materialize(loaded)
    assert serialized.graph_serialized(loaded).tobytes() == io.to_proto(loaded).SerializeToString()
