"""The dynamo exporter's graph leaves the module's parameters out (stubs, found by identity) and
the public export is, byte for byte, the graph serialized with them."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.front.export import exporters
from qdqforge.front.export.attempts import export_copy
from qdqforge.front.export.cache import CACHE
from qdqforge.front.export.parameter_stubs import PARAMETER, is_parameter_stub
from qdqforge.front.export.to_onnx import export_held


class Mixed(nn.Module):
    """A large and a small Linear, a tied pair, a float16 and a bfloat16 parameter, BN buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Linear(512, 1024)  # 2 MiB weight
        self.bn = nn.BatchNorm1d(1024)
        self.small = nn.Linear(1024, 8)
        self.tied = nn.Linear(1024, 8)
        self.tied.weight = self.small.weight
        self.gain16 = nn.Parameter(torch.randn(8).half())
        self.brain = nn.Parameter(torch.randn(8).to(torch.bfloat16))

    def forward(self, x):
        y = self.bn(self.big(x))
        return self.small(y) + self.tied(y) * self.gain16.float() + self.brain.float()


@pytest.fixture
def model() -> Mixed:
    torch.manual_seed(0)
    net = Mixed().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
    CACHE.clear()
    return net


def test_exporter_proto_holds_no_parameter_bytes_and_keeps_buffers(model):
    x = torch.randn(2, 512)
    proto = exporters.export_dynamo(export_copy(model), (x,), opset=None, dynamic_batch=True)
    stubs = {t.name for t in proto.graph.initializer if is_parameter_stub(t)}
    parameters = dict(model.named_parameters(remove_duplicate=False))
    exported = {t.name for t in proto.graph.initializer}
    assert stubs == {n for n in exported & set(parameters) if n != "brain"}  # bf16: as before
    assert {"big.weight", "gain16", "tied.weight"} <= stubs  # the tied pair under dynamo's name
    for tensor in proto.graph.initializer:
        if tensor.name in stubs:
            assert not tensor.raw_data and tensor.external_data[0].value == PARAMETER
        if tensor.name.startswith("bn.running"):  # the export copy's own buffers: bytes
            assert tensor.name not in stubs and tensor.raw_data


def test_public_export_is_the_graph_serialized_with_its_parameters(model, monkeypatch):
    x = torch.randn(2, 512)
    stubbed = qdqforge.export(model, x).SerializeToString()
    CACHE.clear()
    monkeypatch.setattr(exporters, "serialize_without_parameters",
                        lambda ir_model, module: ir.serde.serialize_model(ir_model))  # fmt: skip
    plain = qdqforge.export(model, x)
    assert not any(is_parameter_stub(t) for t in plain.graph.initializer)
    assert stubbed == plain.SerializeToString()


def test_flow_graph_holds_views_of_the_parameters_and_runs(model):
    x = torch.randn(2, 512)
    held = export_held(model, x)
    weight = held.arrays["big.weight"]
    assert np.shares_memory(weight, model.big.weight.detach().numpy())
    assert not weight.flags.writeable
    full = qdqforge.export(model, x)  # a hit: filled from the same views
    onnx.checker.check_model(full)
    assert (
        onnx.numpy_helper.to_array(
            next(t for t in full.graph.initializer if t.name == "big.weight")
        ).tobytes()
        == model.big.weight.detach().numpy().tobytes()
    )
