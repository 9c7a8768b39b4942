"""The export check's onnxruntime run: large initializers fed in place, the proto's bytes checked.

A ``Linear(512, 1024)`` holds a 2 MiB weight (over ``detached.MIN_BYTES``): onnxruntime reads it
from the export copy's own parameter (the user's, shared) rather than from a copy, and only
after its bytes were found equal to the initializer's; a proto whose bytes differ is run on
its own data and the check fails.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.front.export import check
from qdqforge.front.export.attempts import export_copy
from qdqforge.front.export.cache import CACHE
from qdqforge.graph import detached, numerics


class WideHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(512, 1024)
        self.out = nn.Linear(1024, 8)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


@pytest.fixture(scope="module")
def exported():
    model, x = WideHead().eval(), torch.randn(2, 512, generator=torch.Generator().manual_seed(1))
    return model, x, qdqforge.export(model, x, exporter="dynamo", check=False)


def test_large_weight_is_fed_from_the_model_itself(exported):
    model, _, proto = exported
    feeds = check.weight_feeds(proto, export_copy(model))
    assert list(feeds) == ["fc.weight"]  # fc.bias, out.* are under 1 MiB: kept in the proto
    assert np.shares_memory(feeds["fc.weight"], model.fc.weight.detach().numpy())


def test_fed_run_equals_the_session_of_the_full_proto(exported):
    model, x, proto = exported
    feeds = numerics.feeds_for(proto, [x.numpy()])
    fed = numerics.run_with_weights(proto, feeds, check.weight_feeds(proto, export_copy(model)))
    full = numerics.run(proto, feeds)
    assert len(fed) == len(full) == 1
    # a constant weight is prepacked, a fed one is not: the gemm sums in another order
    # (measured: 1.5e-7 on outputs of ~0.3, float32 round-off)
    np.testing.assert_allclose(fed[0], full[0], rtol=0, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(fed[0], model(x).numpy(), rtol=0, atol=1e-5)


def test_weights_as_inputs_keeps_everything_but_their_data(exported):
    _, _, proto = exported
    skeleton = detached.weights_as_inputs(proto, {"fc.weight"})
    assert [t.name for t in skeleton.graph.initializer] == [
        t.name for t in proto.graph.initializer if t.name != "fc.weight"
    ]
    fed = next(i for i in skeleton.graph.input if i.name == "fc.weight")
    assert [d.dim_value for d in fed.type.tensor_type.shape.dim] == [1024, 512]
    assert skeleton.graph.node == proto.graph.node
    assert skeleton.opset_import == proto.opset_import
    assert skeleton.metadata_props == proto.metadata_props
    assert skeleton.ByteSize() < proto.ByteSize() - 2**21 + 2**10  # the 2 MiB weight left out


def test_initializer_bytes_other_than_the_model_are_checked_from_the_proto(exported):
    """A proto whose weight differs from the model's is run on its own bytes: the check sees
    the difference (it would not if the model's parameter were fed instead)."""
    model, x, proto = exported
    tampered = onnx.ModelProto()
    tampered.CopyFrom(proto)
    index = next(i for i, t in enumerate(tampered.graph.initializer) if t.name == "fc.weight")
    weight = numpy_helper.to_array(tampered.graph.initializer[index]) * 2.0
    tampered.graph.initializer[index].CopyFrom(numpy_helper.from_array(weight, "fc.weight"))
    work = export_copy(model)
    feeds = check.weight_feeds(tampered, work)
    assert not np.shares_memory(feeds["fc.weight"], model.fc.weight.detach().numpy())
    assert check.eval_error(tampered, work, (x,)) > check.TOLERANCE
    assert check.eval_error(proto, export_copy(model), (x,)) < check.TOLERANCE


def test_an_initializer_already_declared_as_input_is_fed_once(exported):
    """Models of IR < 4 list initializers among the graph inputs: no second declaration."""
    model, x, proto = exported
    listed = onnx.ModelProto()
    listed.CopyFrom(proto)
    weight = next(t for t in listed.graph.initializer if t.name == "fc.weight")
    value_type = onnx.helper.make_tensor_type_proto(weight.data_type, weight.dims)
    listed.graph.input.add(name="fc.weight").type.CopyFrom(value_type)
    skeleton = detached.weights_as_inputs(listed, {"fc.weight"})
    assert [i.name for i in skeleton.graph.input].count("fc.weight") == 1
    feeds = {"input": x.numpy()}
    fed = numerics.run_with_weights(listed, feeds, check.weight_feeds(listed, export_copy(model)))
    with torch.no_grad():
        np.testing.assert_allclose(fed[0], model(x).numpy(), rtol=0, atol=1e-5)


class WithUnusedHead(nn.Module):
    """A used Linear and one the forward never calls (160 KB: above numerics.IN_MEMORY_BYTES)."""

    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(16, 8), nn.Linear(200, 200)

    def forward(self, x):
        return self.used(x)


def test_the_check_runs_on_a_graph_with_unused_weights(caplog, monkeypatch):
    """The exported graph keeps weights no node reads (``add_unused_weights``), and the check
    runs on that graph: onnxruntime must not refuse it (it did: "Failed to find existing
    initializer", and the check was skipped with a warning)."""
    torch.manual_seed(0)
    model, x = WithUnusedHead().eval(), torch.randn(2, 16)
    errors, measured = [], check.eval_error

    def recorded(*args, **kwargs):
        errors.append(measured(*args, **kwargs))
        return errors[-1]

    monkeypatch.setattr(check, "eval_error", recorded)
    CACHE.clear()  # a hit would not export, nor check
    with caplog.at_level("WARNING"):
        proto = qdqforge.export(model, x, exporter="dynamo")
    assert "cannot run the exported graph" not in caplog.text
    assert len(errors) == 1 and errors[0] < 1e-6  # measured, not NaN (NaN: not checked)
    assert "unused.weight" in {t.name for t in proto.graph.initializer}
    np.testing.assert_allclose(
        numerics.run(proto, {"input": x.numpy()})[0], model(x).detach().numpy(), atol=1e-6
    )
