"""export options: several inputs/outputs, static shapes, opset routing, saving to a path."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.graph import meta


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("scratch", torch.zeros(4), persistent=False)

    def forward(self, x, y):
        return self.fc(x) * self.scale + y + self.scratch, x.sum(dim=1)


def run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


@pytest.fixture(scope="module")
def two_io():
    torch.manual_seed(0)
    model, args = TwoInTwoOut(), (torch.randn(2, 4), torch.randn(2, 4))
    return model, args, qdqforge.export(model, args)  # dynamo


def test_several_inputs_and_outputs_are_numbered(two_io):
    _, _, proto = two_io
    assert [i.name for i in proto.graph.input] == ["input_0", "input_1"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]


def test_several_inputs_share_the_dynamic_batch(two_io):
    model, _, proto = two_io
    x, y = torch.randn(5, 4), torch.randn(5, 4)
    got = run(proto, {"input_0": x.numpy(), "input_1": y.numpy()})
    with torch.no_grad():
        want = model(x, y)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-5)


def test_only_persistent_buffers_are_listed(two_io):
    _, _, proto = two_io
    props = {p.key: p.value for p in proto.metadata_props}
    assert meta.load_names(props[meta.BUFFERS]) == ["scale"]
    assert meta.load_names(props[meta.PARAMETERS]) == ["fc.bias", "fc.weight"]


def test_static_shapes_when_dynamic_batch_is_off():
    model, x = nn.Sequential(nn.Linear(4, 3)), torch.randn(2, 4)
    proto = qdqforge.export(model, x, dynamic_batch=False, exporter="torchscript")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 4] and not dims[0].dim_param
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        run(proto, {"input": np.zeros((5, 4), np.float32)})


def test_low_opset_routes_auto_to_torchscript(caplog):
    with caplog.at_level(logging.INFO, logger="qdqforge"):
        proto = qdqforge.export(
            nn.Sequential(nn.Linear(4, 3), nn.GELU()), torch.randn(2, 4), opset=17
        )
    assert opset(proto) == 17
    assert {"Erf"} <= {n.op_type for n in proto.graph.node}  # Gelu is opset 20
    assert any("TorchScript" in r.getMessage() for r in caplog.records)


def test_dynamo_raises_low_opset_to_its_minimum(caplog):
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        proto = qdqforge.export(nn.Linear(4, 3), torch.randn(2, 4), opset=17, exporter="dynamo")
    assert opset(proto) == 18
    assert any("raised to 18" in r.getMessage() for r in caplog.records)


def test_path_is_written_atomically_as_one_file(tmp_path):
    model, x = nn.Sequential(nn.Linear(4, 3)), torch.randn(2, 4)
    target = tmp_path / "sub" / "model.onnx"
    proto = qdqforge.export(model, x, target, exporter="torchscript")
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]
    assert onnx.load(target).SerializeToString() == proto.SerializeToString()


class ChannelDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.drop2d = nn.Dropout2d(0.5)
        self.alpha = nn.AlphaDropout(0.5)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.alpha(self.drop2d(self.conv(x))))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_channel_and_alpha_dropout_export_as_identity(exporter):
    model, x = ChannelDropout(), torch.randn(2, 3, 4, 4)
    proto = qdqforge.export(model, x, exporter=exporter)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Dropout") == 1  # the plain nn.Dropout only
    assert not [op for op in ops if op.startswith("Random")]
    with torch.no_grad():
        want = model.eval()(x).numpy()
    np.testing.assert_allclose(run(proto, {"input": x.numpy()})[0], want, atol=1e-6)


class TrainingBranch(nn.Module):
    """An auxiliary output in training mode, as in Inception-style nets."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        y = self.drop(self.fc(x))
        return y * 3.0 if self.training else y


def test_training_only_branch_is_exported_again_in_eval_mode(caplog):
    model, x = TrainingBranch(), torch.randn(2, 4)
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        proto = qdqforge.export(model, x, exporter="torchscript")
    assert any("branches on self.training" in r.getMessage() for r in caplog.records)
    assert "Dropout" not in {n.op_type for n in proto.graph.node}
    assert model.training, "the user's model keeps its mode"
    with torch.no_grad():
        want = model.eval()(x).numpy()
    np.testing.assert_allclose(run(proto, {"input": x.numpy()})[0], want, atol=1e-6)


def test_torchscript_export_is_deterministic():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Linear(4, 2)), torch.randn(2, 4)
    first = qdqforge.export(model, x, exporter="torchscript")
    second = qdqforge.export(model, x, exporter="torchscript")
    assert first.SerializeToString() == second.SerializeToString()


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_tied_weight_is_listed_under_the_name_the_exporter_kept(exporter):
    proto = qdqforge.export(Tied(), torch.randn(2, 4), exporter=exporter)
    inits = {t.name for t in proto.graph.initializer}
    weight = ({"a.weight", "b.weight"} & inits).pop()  # dynamo keeps b.weight, TorchScript a.weight
    props = {p.key: p.value for p in proto.metadata_props}
    assert meta.load_names(props[meta.PARAMETERS]) == sorted({weight, "a.bias", "b.bias"})


def test_model_class_without_source_file_exports():
    namespace: dict = {"nn": nn}
    source = "class Generated(nn.Module):\n    def forward(self, x):\n        return x * 2\n"
    exec(compile(source, "<generated>", "exec"), namespace)
    proto = qdqforge.export(namespace["Generated"](), torch.ones(1, 2), exporter="torchscript")
    assert [n.op_type for n in proto.graph.node if n.op_type != "Constant"] == ["Mul"]


class MixedRanks(nn.Module):
    def forward(self, x, y, scale):
        return (x * scale).sum(), x + y.sum()


def test_batch_axes_follow_each_inputs_size_and_skip_scalars():
    args = (torch.randn(2, 4), torch.randn(3, 4), torch.tensor(2.0))
    proto = qdqforge.export(MixedRanks(), args, exporter="torchscript")
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*proto.graph.input, *proto.graph.output]
    }
    assert shapes["input_0"] == ["batch", 4] and shapes["input_1"] == ["batch_1", 4]
    assert shapes["input_2"] == [] and shapes["output_0"] == []
