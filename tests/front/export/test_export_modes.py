"""Training-mode vs eval-mode export: chosen by one eager forward, with a fallback to eval mode
when every exporter refuses the training-mode graph (Wav2Vec2's SpecAugment, LayerDrop)."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.front.export import exporters


class DropPath(nn.Module):
    """Stochastic depth: in training mode a random sample skips the block (not dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 4), nn.Dropout(0.1)

    def forward(self, x):
        keep = (torch.rand(x.shape[0], 1) > 0.5).float() if self.training else 1.0
        return x + self.drop(self.fc(x)) * keep


class LayerDrop(nn.Module):
    """LayerDrop with p = 0 (transformers' OPT/BART/Whisper default): the same numbers in both
    modes, but a branch on a random tensor's value that no exporter takes in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.attn_drop = nn.Linear(4, 4), nn.Dropout(0.1)
        self.layerdrop = 0.0

    def forward(self, x):
        if self.training and torch.rand([]) < self.layerdrop:
            return x
        return self.fc(torch.nn.functional.dropout(x, 0.1, self.training))


@pytest.fixture
def dynamo_calls(monkeypatch):
    calls = []
    real = exporters.export_dynamo

    def counting(model, *args, **kwargs):
        calls.append(model.training)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(exporters, "export_dynamo", counting)
    return calls


def ort_out(proto, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options)
    return session.run(None, {"input": x.numpy()})[0]


def check_eval_graph(model, x, proto):
    assert "Dropout" not in {n.op_type for n in proto.graph.node}
    with torch.no_grad():
        want = model.eval()(x).numpy()
    np.testing.assert_allclose(ort_out(proto, x), want, rtol=1e-5, atol=1e-6)


def test_training_branch_is_found_before_exporting(dynamo_calls, caplog):
    model, x = DropPath(), torch.randn(6, 4)
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        proto = qdqforge.export(model, x)
    assert dynamo_calls == [False], "one export, in eval mode"
    messages = [r.getMessage() for r in caplog.records]
    assert any("branches on self.training beyond dropout" in m for m in messages), messages
    assert model.training, "the user's model keeps its mode"
    check_eval_graph(model, x, proto)


def test_training_mode_export_failure_falls_back_to_eval(dynamo_calls, caplog):
    model, x = LayerDrop(), torch.randn(3, 4)
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        proto = qdqforge.export(model, x)
    assert dynamo_calls == [True, False]  # dynamo in train (TorchScript refused too), then eval
    assert any("exporting again in eval mode" in r.getMessage() for r in caplog.records)
    check_eval_graph(model, x, proto)


def test_dropout_only_model_keeps_its_dropout_nodes(dynamo_calls):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.GELU(), nn.Linear(4, 2))
    x = torch.randn(3, 4)
    proto = qdqforge.export(model, x)
    assert dynamo_calls == [True]
    assert "Dropout" in {n.op_type for n in proto.graph.node}
    net = qdqforge.reimport(proto)
    net.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    assert not torch.equal(net.train()(x), net.eval()(x)), "dropout is active in train()"


class CountsEvalForwards(nn.Module):
    EVAL_FORWARDS = 0

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if not self.training:
            type(self).EVAL_FORWARDS += 1
        return self.fc(x)


def test_one_eval_forward_serves_the_training_mode_check_and_the_export_check(dynamo_calls):
    """The export copies count on the class (each copy has its own attribute)."""
    CountsEvalForwards.EVAL_FORWARDS = 0
    model = CountsEvalForwards()
    proto = qdqforge.export(model, torch.randn(3, 4))
    assert dynamo_calls == [True]
    assert CountsEvalForwards.EVAL_FORWARDS == 1
    check_eval_graph(model, torch.randn(3, 4), proto)
