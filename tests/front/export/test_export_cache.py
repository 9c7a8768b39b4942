"""The export cache through qdqforge.export and the public flows: exporter runs are counted.

A miss must export again and return the new model's graph (never a stale one); a hit must not
export, and must return an independent copy. The fingerprint's own cases are in
test_fingerprint.py.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.front.export import attempts, torchlib_registry
from qdqforge.front.export.cache import CACHE, ENV_LIMIT_MB, ENV_SWITCH
from tests.helpers.dmq_flow import build, write_config


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture
def runs(monkeypatch) -> list[str]:
    """Exporter runs (one entry per real export) made through qdqforge.export."""
    calls: list[str] = []
    real = attempts.run_exporters

    def counted(model, args, names, **options):
        calls.append(type(model).__qualname__)
        return real(model, args, names, **options)

    monkeypatch.setattr(attempts, "run_exporters", counted)
    return calls


def mlp() -> Mlp:
    torch.manual_seed(0)
    return Mlp().eval()


def weight(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(t) for t in proto.graph.initializer if t.name == name)


def test_hit_returns_an_independent_copy(runs):
    model, x = mlp(), torch.randn(4, 6)
    first = qdqforge.export(model, x)
    first.graph.node.pop()  # callers rewrite graphs in place
    second = qdqforge.export(model, torch.randn(4, 6))  # same signature, other values
    third = qdqforge.export(model, x)
    assert len(runs) == 1 and CACHE.stats.hits == 2
    assert second is not third and len(second.graph.node) == len(first.graph.node) + 1
    assert second.SerializeToString() == third.SerializeToString()


def test_changed_weights_export_again_with_the_new_values(runs):
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    model.fc1.weight.data[0, 0] += 1.0  # no version-counter bump
    proto = qdqforge.export(model, x)
    assert len(runs) == 2
    np.testing.assert_array_equal(weight(proto, "fc1.weight"), model.fc1.weight.detach().numpy())


@pytest.mark.parametrize(
    "change",
    [
        lambda m, x: (m.train(), x),
        lambda m, x: (m.fc1.register_forward_hook(lambda mod, i, o: o + 1), x),
        lambda m, x: (setattr(m, "fc2", nn.Linear(8, 5)), x),
        lambda m, x: (None, torch.randn(2, 6)),
        lambda m, x: (None, x.double()),
    ],
    ids=["train mode", "hook", "structure", "batch size", "input dtype"],
)
def test_any_change_exports_again(runs, change):
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    _, x2 = change(model, x)
    if x2.dtype == torch.float64:
        model.double()
    qdqforge.export(model, x2)
    assert len(runs) == 2 and CACHE.stats.hits == 0


def test_switch_off(runs, monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "0")
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    qdqforge.export(model, x)
    assert len(runs) == 2 and CACHE.stats.uncached == 2


def test_size_limit(runs, monkeypatch):
    monkeypatch.setenv(ENV_LIMIT_MB, "0.0001")  # 104 bytes: the MLP graph's nodes alone do not fit
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    qdqforge.export(model, x)
    assert len(runs) == 2


def test_unreadable_model_is_exported_every_time(runs):
    model, x = mlp(), torch.randn(4, 6)
    model.handle = object()
    qdqforge.export(model, x)
    qdqforge.export(model, x)
    assert len(runs) == 2 and CACHE.stats.uncached == 2


def test_torchscript_graphs_are_reused_only_for_the_same_values(runs):
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x, exporter="torchscript")
    qdqforge.export(model, x.clone(), exporter="torchscript")
    assert len(runs) == 1
    qdqforge.export(model, torch.randn(4, 6), exporter="torchscript")
    assert len(runs) == 2


def test_options_are_part_of_the_key(runs):
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    qdqforge.export(model, x, dynamic_batch=False)
    qdqforge.export(model, x, exporter="torchscript")
    assert len(runs) == 3


def test_the_cache_does_not_keep_the_model_alive(runs):
    model, x = mlp(), torch.randn(4, 6)
    qdqforge.export(model, x)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_registry_is_built_once_and_exports_are_identical(monkeypatch):
    from torch.onnx._internal.exporter._registration import ONNXRegistry

    built, real = [], ONNXRegistry.__dict__["from_torchlib"].__func__

    def counted(klass, opset_version=20):
        built.append(opset_version)
        return real(klass, opset_version=opset_version)

    monkeypatch.setattr(ONNXRegistry, "from_torchlib", classmethod(counted))
    monkeypatch.setattr(torchlib_registry, "_BUILT", {})
    reused = [qdqforge.export(mlp(), torch.randn(4, 6), check=c) for c in (True, False)]
    assert len(built) == 1
    monkeypatch.setattr(torchlib_registry, "_registration", lambda: None)  # built per export
    CACHE.clear()
    fresh = [qdqforge.export(mlp(), torch.randn(4, 6), check=c) for c in (True, False)]
    assert len(built) == 3
    assert [p.SerializeToString() for p in reused] == [p.SerializeToString() for p in fresh]


def test_ptq_flow_with_dmq_exports_once(tmp_path, runs):
    model, batches = build("cnn")
    x = batches[0]
    cfg = write_config(tmp_path, model, x, dmq=True)
    record = str(tmp_path / "record.txt")
    with torch.no_grad():
        qdqforge.quantize_preprocess(str(cfg), record, model, x)(x)
        calib = qdqforge.quantize_model(str(cfg), str(tmp_path / "m.onnx"), record, model, x)
        calib(x)
    assert runs == [type(model).__qualname__]


def test_qat_flow_exports_once(tmp_path, runs):
    model, batches = build("cnn")
    x = batches[0]
    cfg = str(tmp_path / "qat.json")
    qdqforge.create_quant_retrain_config(cfg, model, x)
    qdqforge.create_quant_retrain_model(cfg, model, str(tmp_path / "r.txt"), x)
    assert runs == [type(model).__qualname__]
