"""Saving runs with Python's cyclic collector paused, and leaves it as it was: the copies a
save builds and drops die young instead of being scanned by full collections (MobileNetV3's
PTQ save: one full collection of 0.27 s, save 2.0 -> 1.8 s); graphs of ``REAP_BYTES`` or more
are still collected explicitly (``graph.detached.reap_dropped``). The passes' working copy of a
graph is made paused too."""

from __future__ import annotations

import gc

import pytest

from qdqforge.front.save import write_models
from qdqforge.graph.ir import Graph
from qdqforge.passes.infra import pipeline


@pytest.mark.parametrize("enabled", [True, False])
def test_write_quant_models_pauses_the_collector(monkeypatch, enabled):
    seen = []

    def write(*args):
        seen.append(gc.isenabled())
        raise RuntimeError("stop here")

    monkeypatch.setattr(write_models, "_write_checked", write)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            write_models.write_quant_models(None, {}, "out/net")
        assert seen == [False] and gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_the_passes_working_copy_is_made_paused(monkeypatch):
    seen = []
    monkeypatch.setattr(Graph, "copy", lambda self: seen.append(gc.isenabled()) or self)
    graph = Graph.__new__(Graph)
    assert pipeline._working_graph(graph, consume=False) is graph and seen == [False]
    assert pipeline._working_graph(graph, consume=True) is graph and seen == [False]
    assert gc.isenabled()
