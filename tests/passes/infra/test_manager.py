"""PassManager: stats aggregation, failure wrapping with a dump, env-driven instruments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qdqforge.errors import NumericMismatchError, PassError
from qdqforge.graph import io
from qdqforge.passes import GraphPass, PassManager, PassResult, all_passes, get_pass
from qdqforge.passes.debug.instruments import NumericCheck, instruments_from_env
from tests.helpers import onnx_graphs as g


class BrokenPass(GraphPass):
    """Always fails."""

    name = "broken"

    def call(self, graph, ctx):
        raise ValueError("boom")


class ScaleOutputPass(GraphPass):
    """Multiplies the weight of the first conv by two (changes numerics)."""

    name = "scale_output"

    def call(self, graph, ctx):
        conv = next(n for n in graph.gs.nodes if n.op == "Conv")
        conv.inputs[1].values = np.asarray(conv.inputs[1].values) * 2
        return PassResult(graph, True, {"scaled": 1})


def _pipeline_names():
    return [get_pass("canonicalize")(), get_pass("fold_bn")()]


def test_registry_lists_builtin_passes_with_summaries():
    passes = all_passes()
    assert {"canonicalize", "fold_bn"} <= set(passes)
    assert passes["fold_bn"].summary().startswith("Fold inference BatchNormalization")


def test_unknown_pass_name_lists_known_ones():
    with pytest.raises(PassError, match=r"known passes: .*fold_bn"):
        get_pass("fold_bm")


def test_manager_aggregates_stats_and_dumps_with_env(tmp_path, monkeypatch):
    monkeypatch.setenv("QDQFORGE_DEBUG_DIR", str(tmp_path))
    for _ in range(2):  # each run gets its own numbered folder
        manager = PassManager(_pipeline_names(), instruments=instruments_from_env("demo run"))
        result = manager(io.load(g.conv_bn_model()))
    assert result.stats["fold_bn.bn_folded"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_demo_run", "02_demo_run"]
    folder = tmp_path / "02_demo_run"
    stages = ("01_canonicalize", "02_fold_bn")
    expected = {"00_input.onnx", "passlog.jsonl"}
    expected |= {f"{s}{ext}" for s in stages for ext in (".onnx", ".diff.json", ".diff.html")}
    assert {p.name for p in folder.iterdir()} == expected
    log = [json.loads(line) for line in (folder / "passlog.jsonl").read_text().splitlines()]
    assert [e["pass"] for e in log] == ["canonicalize", "fold_bn"]
    assert log[1]["ops"]["BatchNormalization"] == -1 and log[1]["removed"] == ["bn/bn"]


def test_failure_names_pass_index_previous_passes_and_dump(tmp_path, monkeypatch):
    monkeypatch.setenv("QDQFORGE_DEBUG_DIR", str(tmp_path))
    manager = PassManager(
        [get_pass("canonicalize")(), BrokenPass()], instruments=instruments_from_env()
    )
    with pytest.raises(PassError) as info:
        manager(io.load(g.conv_bn_model()))
    message = str(info.value)
    assert "pass 'broken' (#1) failed after canonicalize: boom" in message
    assert "failure/02_broken.before.onnx" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert (tmp_path / "01_pipeline" / "failure" / "02_broken.before.onnx").exists()


def test_numeric_check_measures_each_pass():
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 6)).astype(np.float32)
    check = NumericCheck({"x": x})
    PassManager(_pipeline_names(), instruments=[check])(io.load(g.conv_bn_model()))
    assert check.errors["fold_bn"] < 1e-5
    strict = NumericCheck({"x": x}, threshold=1e-4)
    with pytest.raises(NumericMismatchError, match="scale_output"):
        PassManager([ScaleOutputPass()], instruments=[strict])(io.load(g.conv_bn_model()))
