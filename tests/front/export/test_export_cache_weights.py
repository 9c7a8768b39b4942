"""The export cache keeps graphs without the model's weights and refills them exactly on a hit."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.front.export import cache_weights
from qdqforge.front.export.cache import CACHE
from qdqforge.front.export.to_onnx import export_held
from qdqforge.graph import held_arrays, io
from qdqforge.graph.detached import materialize


class TiedNet(nn.Module):
    """Conv + BN (buffers), a tied Linear pair, a bf16 parameter and an exporter-made constant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 8)
        self.tied = nn.Linear(8, 8)
        self.tied.weight = self.fc.weight
        self.gain = nn.Parameter(torch.randn(8).to(torch.bfloat16))

    def forward(self, x):
        y = self.bn(self.conv(x)).mean(dim=(2, 3))
        y = self.tied(torch.relu(self.fc(y)))
        return y * self.gain.float() + torch.arange(8.0)


@pytest.fixture
def model() -> TiedNet:
    torch.manual_seed(0)
    net = TiedNet().eval()
    with torch.no_grad():  # statistics that are not the defaults
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    CACHE.clear()
    return net


def test_hit_is_the_exported_graph_byte_for_byte(model):
    x = torch.randn(2, 3, 10, 10)
    first = qdqforge.export(model, x).SerializeToString()
    (entry,) = CACHE._entries.values()
    hit = qdqforge.export(model, x)
    assert CACHE.stats.hits == 1
    assert hit.SerializeToString() == first
    names = {t.name for t in hit.graph.initializer}
    assert {"conv.weight", "bn.running_mean", "fc.weight", "gain"} <= entry.stored.from_model
    assert entry.stored.from_model <= names


def test_entry_holds_no_weights(model):
    big = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 16)).eval()
    qdqforge.export(big, torch.randn(2, 512))
    (entry,) = CACHE._entries.values()
    weights = sum(p.numel() * p.element_size() for p in big.parameters())
    assert entry.size < weights / 50, (entry.size, weights)


def test_changed_weights_never_come_from_the_stubs(model):
    x = torch.randn(2, 3, 10, 10)
    qdqforge.export(model, x)
    with torch.no_grad():
        model.conv.weight.mul_(2.0)
    again = qdqforge.export(model, x)
    assert CACHE.stats.hits == 0 and CACHE.stats.misses == 2
    got = next(t for t in again.graph.initializer if t.name == "conv.weight")
    np.testing.assert_array_equal(numpy_helper.to_array(got), model.conv.weight.detach().numpy())


def test_an_initializer_unlike_the_model_tensor_stays_in_the_entry(model):
    x = torch.randn(2, 3, 10, 10)
    proto = qdqforge.export(model, x)
    tensor = next(t for t in proto.graph.initializer if t.name == "fc.bias")
    tensor.CopyFrom(numpy_helper.from_array(np.full(8, 7.0, np.float32), "fc.bias"))
    stored = cache_weights.weightless(proto, model)
    assert "fc.bias" not in stored.from_model and "fc.weight" in stored.from_model
    filled = held_arrays.filled(cache_weights.held_weights(stored, model))
    assert filled.SerializeToString() == proto.SerializeToString()


def test_a_model_without_the_stubbed_tensor_gets_none(model):
    proto = qdqforge.export(model, torch.randn(2, 3, 10, 10))
    stored = cache_weights.weightless(proto, model)
    assert cache_weights.held_weights(stored, nn.Linear(3, 3)) is None


def test_stubs_carry_no_data(model):
    proto = qdqforge.export(model, torch.randn(2, 3, 10, 10))
    stored = cache_weights.weightless(proto, model)
    stub = next(t for t in stored.proto.graph.initializer if t.name == "conv.weight")
    assert not stub.HasField("raw_data") and list(stub.dims) == [8, 3, 3, 3]
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(stored.proto, full_check=True)


def test_miss_and_hit_hold_read_only_views_of_the_model_the_graph_takes():
    """A flow's graph (``export_held``), found in the cache or not: no proto holds the large
    weights; the graph imported from it holds read-only views of the model's tensors (a write
    raises, the model keeps its values) and is the public export's graph, byte for byte."""
    torch.manual_seed(1)
    big = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 16)).eval()
    x = torch.randn(2, 512)
    CACHE.clear()
    exported = qdqforge.export(big, x)  # a miss: the one-message model
    assert CACHE.stats.misses == 1 and exported.ByteSize() > 1024 * 512 * 4
    want = io.to_proto(io.from_proto(exported)).SerializeToString()
    CACHE.clear()
    for expected_hits in (0, 1):  # a miss, then a hit
        held = export_held(big, x)
        assert CACHE.stats.hits == expected_hits and set(held.arrays) == {"0.weight"}
        assert held.model.ByteSize() < 1024 * 512 * 4 / 20  # the 2 MiB weight is not in it
        param = big.get_parameter("0.weight").detach().numpy()
        array = held.arrays["0.weight"]
        assert np.shares_memory(array, param) and not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 1.0
        graph = io.from_proto(held.model)
        taken = graph.gs.tensors()["0.weight"].values
        assert taken is array  # shared with the graph, not copied again
        del held
        gc.collect()
        materialize(graph)
        assert io.to_proto(graph).SerializeToString() == want
