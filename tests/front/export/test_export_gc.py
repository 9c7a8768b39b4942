"""The torch exporters run with Python's cyclic collector paused (``qdqforge.gc_pause``) and
leave it as they found it: on after an export where it was on, off where the caller had
turned it off, also when the exporter raises."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from qdqforge.front.export import exporters


@pytest.fixture
def collector_seen(monkeypatch):
    seen = []
    real = torch.onnx.export

    def export(*args, **kwargs):
        seen.append(gc.isenabled())
        if kwargs.get("opset_version") == 99:
            raise RuntimeError("refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    return seen


@pytest.mark.parametrize("export", [exporters.export_dynamo, exporters.export_torchscript])
@pytest.mark.parametrize("enabled", [True, False])
def test_export_pauses_the_collector_and_restores_it(collector_seen, export, enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        model = export(nn.Linear(3, 2).eval(), (torch.randn(4, 3),), opset=18, dynamic_batch=True)
        assert [o.name for o in model.graph.output]  # a real export ran
        assert collector_seen == [False] and gc.isenabled() is enabled
        with pytest.raises(RuntimeError, match="refused"):
            export(nn.Linear(3, 2).eval(), (torch.randn(4, 3),), opset=99, dynamic_batch=False)
        assert collector_seen == [False, False] and gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
