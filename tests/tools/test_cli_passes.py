"""``qdqforge passes list|ops|run|bisect`` on tiny models in ``tmp_path``.

Test passes (a failing one, a weight-perturbing one) are registered with ``monkeypatch`` so the
global registry is clean again after each test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from qdqforge.cli.main import main
from qdqforge.graph.diff.model import GraphDiff
from qdqforge.passes import GraphPass, PassResult
from qdqforge.passes.debug.inputs import random_feeds
from qdqforge.passes.infra import registry
from tests.helpers.onnx_graphs import conv_bn_model, make_model, tensor_info

QDQFORGE = Path(sys.executable).with_name("qdqforge")
STAGE_FILES = {
    "00_input.onnx",
    "01_canonicalize.onnx",
    "01_canonicalize.diff.json",
    "01_canonicalize.diff.html",
    "02_fold_bn.onnx",
    "02_fold_bn.diff.json",
    "02_fold_bn.diff.html",
    "passlog.jsonl",
}


class ExplodePass(GraphPass):
    """Always fails (test pass)."""

    name = "explode"

    def call(self, graph, ctx):
        graph.gs.nodes.clear()  # half-rewritten graph: the dump must not show this
        raise RuntimeError("boom")


class PerturbWeightPass(GraphPass):
    """Scales the first Conv weight by 1.5 (test pass)."""

    name = "perturb"

    def call(self, graph, ctx):
        conv = next(n for n in graph.gs.nodes if n.op == "Conv")
        conv.inputs[1].values = conv.inputs[1].values * np.float32(1.5)
        return PassResult(graph, True, {"perturbed": 1})


@pytest.fixture
def test_passes(monkeypatch):
    monkeypatch.setitem(registry._PASSES, "explode", ExplodePass)
    monkeypatch.setitem(registry._PASSES, "perturb", PerturbWeightPass)


@pytest.fixture
def model(tmp_path) -> str:
    path = tmp_path / "conv_bn.onnx"
    onnx.save(conv_bn_model(), path)
    return str(path)


@pytest.fixture
def custom_op_model(tmp_path) -> str:
    node = helper.make_node("Frobnicate", ["x"], ["y"], name="frob", domain="made.up")
    proto = make_model([node], [tensor_info("x", [1, 3])], [tensor_info("y", [1, 3])])
    proto.opset_import.append(helper.make_opsetid("made.up", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(proto, path)
    return str(path)


def _passlog(folder: Path) -> list[dict]:
    entries = [json.loads(line) for line in (folder / "passlog.jsonl").read_text().splitlines()]
    for entry in entries:
        assert entry.pop("ms") >= 0.0
    return entries


def test_list_shows_passes_with_summary(capsys):
    assert main(["passes", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "Fold inference BatchNormalization" in lines["fold_bn"]
    assert "canonicalize" in lines


def test_ops_table_for_supported_model(model, capsys):
    assert main(["passes", "ops", model]) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["BatchNormalization"] == ["ai.onnx", "BatchNormalization", "20", "1", "yes"]
    assert set(rows) == {"BatchNormalization", "Conv", "Relu"}


def test_ops_unsupported_is_exit_3(custom_op_model, capsys):
    assert main(["passes", "ops", custom_op_model]) == 3
    out = capsys.readouterr()
    assert out.out.splitlines()[2].split() == ["made.up", "Frobnicate", "1", "1", "NO"]
    assert "made.up::Frobnicate" in out.err


def test_run_writes_stages_diffs_and_passlog(model, tmp_path, capsys):
    dump = tmp_path / "dump"
    assert main(["passes", "run", model, "--dump-dir", str(dump), "--random-inputs"]) == 0
    assert {p.name for p in dump.iterdir()} == STAGE_FILES
    log = _passlog(dump)
    errors = [(e.pop("max_error"), e.pop("error_vs_input")) for e in log]
    assert errors[0] == (0.0, 0.0)
    assert 0.0 < errors[1][0] == errors[1][1] < 1e-4
    assert log[0] == {
        "idx": 1,
        "pass": "canonicalize",
        "modified": False,
        "added": [],
        "removed": [],
        "changed": [],
        "ops": {},
        "stats": {
            "constants_lifted": 0,
            "identities_removed": 0,
            "nodes_folded": 0,
            "zero_biases_dropped": 0,
        },
    }
    assert log[1] == {
        "idx": 2,
        "pass": "fold_bn",
        "modified": True,
        "added": [],
        "removed": ["bn/bn"],
        "changed": ["conv/op"],
        "ops": {"BatchNormalization": -1},
        "stats": {"bn_folded": 1, "skipped_by_config": 0, "not_foldable": 0},
    }
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("[02] fold_bn  modified  -1 BatchNormalization ~1 Conv  ")
    assert "max|Δ| " in out[1]
    assert any(line.split() == ["BatchNormalization", "1", "0", "-1"] for line in out)


def test_run_fold_bn_diff_sets(model, tmp_path):
    dump = tmp_path / "dump"
    assert main(["passes", "run", model, "--dump-dir", str(dump)]) == 0
    diff = GraphDiff.from_json((dump / "02_fold_bn.diff.json").read_text())
    assert (diff.added_names, diff.removed_names, diff.changed_names) == (
        set(),
        {"bn/bn"},
        {"conv/op"},
    )
    assert "conv/op" in (dump / "02_fold_bn.diff.html").read_text()
    assert _passlog(dump)[1]["max_error"] is None  # no --check-ort: no numbers


def test_run_until_and_skip(model, tmp_path):
    assert (
        main(["passes", "run", model, "--dump-dir", str(tmp_path / "u"), "--until", "canonicalize"])
        == 0
    )
    assert [e["pass"] for e in _passlog(tmp_path / "u")] == ["canonicalize"]
    assert (
        main(["passes", "run", model, "--dump-dir", str(tmp_path / "s"), "--skip", "canonicalize"])
        == 0
    )
    assert (tmp_path / "s" / "01_fold_bn.onnx").is_file()
    assert [e["pass"] for e in _passlog(tmp_path / "s")] == ["fold_bn"]


def test_run_unknown_pass_is_exit_1(model, tmp_path, capsys):
    assert main(["passes", "run", model, "--dump-dir", str(tmp_path), "--pipeline", "nope"]) == 1
    assert "unknown pass 'nope'" in capsys.readouterr().err


def test_run_with_npz_inputs(model, tmp_path):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.ones((1, 4, 6, 6), np.float32))
    dump = tmp_path / "dump"
    args = ["passes", "run", model, "--dump-dir", str(dump), "--inputs", str(inputs)]
    assert main([*args, "--max-error", "1e-4"]) == 0
    assert _passlog(dump)[1]["max_error"] < 1e-4


def test_pass_failure_is_exit_1_with_dump(model, tmp_path, capsys, test_passes):
    dump = tmp_path / "dump"
    args = ["passes", "run", model, "--dump-dir", str(dump), "--pipeline", "fold_bn,explode"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "pass 'explode' (#1) failed after fold_bn" in err
    before = dump / "failure" / "02_explode.before.onnx"
    assert str(before) in err
    assert [n.op_type for n in onnx.load(before).graph.node] == ["Conv", "Relu"]
    entry = _passlog(dump)[-1]
    assert (entry["idx"], entry["pass"], entry["error"]) == (2, "explode", "RuntimeError: boom")


def test_numeric_check_over_threshold_is_exit_2(model, tmp_path, capsys, test_passes):
    dump = tmp_path / "dump"
    args = ["passes", "run", model, "--dump-dir", str(dump), "--pipeline", "fold_bn,perturb"]
    assert main([*args, "--check-ort", "--max-error", "1e-3"]) == 2
    assert "pass 'perturb' changed the outputs by" in capsys.readouterr().err
    log = _passlog(dump)
    assert log[0]["max_error"] < 1e-3 < log[1]["max_error"]
    assert log[1]["changed"] == ["conv/op"]


def test_run_unsupported_op_is_exit_3(custom_op_model, tmp_path, capsys):
    assert main(["passes", "run", custom_op_model, "--dump-dir", str(tmp_path / "d")]) == 3
    assert "Frobnicate" in capsys.readouterr().err


def test_bisect_finds_perturbing_pass_and_tensor(model, tmp_path, capsys, test_passes):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, np.random.default_rng(0).normal(size=(2, 4, 6, 6)).astype(np.float32))
    args = ["passes", "bisect", model, "--inputs", str(inputs)]
    assert main([*args, "--pipeline", "canonicalize,fold_bn,perturb,canonicalize"]) == 2
    out = capsys.readouterr().out
    assert "first pass over 0.0001: [03] perturb" in out
    tensors = out.split("first diverging tensors (topological order):\n")[1].split()
    assert tensors[0] == "b"  # the Conv output, before the Relu's "y"
    assert main(args) == 0
    assert "no pass changes the outputs" in capsys.readouterr().out


def test_console_script_runs_passes(model, tmp_path):
    dump = tmp_path / "dump"
    cmd = [str(QDQFORGE), "passes", "run", model, "--dump-dir", str(dump), "--check-ort"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[02] fold_bn  modified" in proc.stdout
    assert {p.name for p in dump.iterdir()} == STAGE_FILES


def test_random_inputs_follow_graph_shapes_and_dtypes():
    ids = tensor_info("ids", ["batch", 3], onnx.TensorProto.INT64)
    mask = tensor_info("mask", [1, "seq"], onnx.TensorProto.BOOL)
    node = helper.make_node("Identity", ["ids"], ["out"], name="id")
    proto = make_model([node], [ids, mask], [tensor_info("out", ["batch", 3])])
    feeds = random_feeds(proto)
    assert {k: (v.shape, v.dtype) for k, v in feeds.items()} == {
        "ids": ((2, 3), np.dtype(np.int64)),
        "mask": ((1, 2), np.dtype(bool)),
    }


class ConfigProbePass(GraphPass):
    """Records the config path it was given (test pass)."""

    name = "config_probe"
    seen: list = []

    def call(self, graph, ctx):
        ConfigProbePass.seen.append(ctx.config_path)
        return PassResult(graph, False)


def test_config_reaches_the_passes(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry._PASSES, "config_probe", ConfigProbePass)
    monkeypatch.setattr(ConfigProbePass, "seen", [])
    cfg = tmp_path / "q.cfg"
    cfg.write_text("")
    args = ["passes", "run", model, "--dump-dir", str(tmp_path / "d"), "--pipeline", "config_probe"]
    assert main([*args, "--config", str(cfg)]) == 0
    assert ConfigProbePass.seen == [str(cfg)]
    assert main([*args, "--config", str(tmp_path / "missing.cfg")]) == 1
    assert "missing.cfg" in capsys.readouterr().err


class BreakOrtPass(GraphPass):
    """Gives the Relu an attribute onnxruntime rejects (test pass)."""

    name = "break_ort"

    def call(self, graph, ctx):
        relu = next(n for n in graph.gs.nodes if n.op == "Relu")
        relu.attrs["bogus"] = 1
        return PassResult(graph, True)


def test_stage_onnxruntime_cannot_run_is_exit_1_with_stage_kept(
    model, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(registry._PASSES, "break_ort", BreakOrtPass)
    dump = tmp_path / "dump"
    args = ["passes", "run", model, "--dump-dir", str(dump), "--pipeline", "fold_bn,break_ort"]
    assert main([*args, "--check-ort"]) == 1
    out = capsys.readouterr()
    assert "onnxruntime could not run stage 02_break_ort" in out.err
    assert "[02] break_ort  FAILED  onnxruntime could not run stage 02_break_ort" in out.out
    assert (dump / "02_break_ort.onnx").is_file()
    assert [e["changed"] for e in _passlog(dump)] == [["conv/op"], ["relu"]]
    assert "onnxruntime" in _passlog(dump)[1]["error"]


def test_bisect_reports_pass_failure_and_unsupported_ops(
    model, custom_op_model, test_passes, capsys
):
    args = ["passes", "bisect", model, "--random-inputs", "--pipeline", "fold_bn,explode"]
    assert main(args) == 1
    assert "pass 'explode' (#1) failed after fold_bn" in capsys.readouterr().err
    assert main(["passes", "bisect", custom_op_model, "--random-inputs"]) == 3
    assert "unsupported ops in the input graph" in capsys.readouterr().err
