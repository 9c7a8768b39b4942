"""``qdqforge diff A B -o page.html``: the page, the JSON and the fold_bn sets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from qdqforge.cli.main import main
from qdqforge.graph.diff.model import GraphDiff
from qdqforge.passes.infra.pipeline import rewrite
from tests.helpers.onnx_graphs import conv_bn_model

QDQFORGE = Path(sys.executable).with_name("qdqforge")


@pytest.fixture
def models(tmp_path) -> tuple[str, str]:
    before, after = tmp_path / "a.onnx", tmp_path / "b.onnx"
    proto = conv_bn_model()
    onnx.save(proto, before)
    onnx.save(rewrite(proto, ("fold_bn",)), after)
    return str(before), str(after)


def test_diff_writes_page_and_json_with_fold_bn_sets(models, tmp_path, capsys):
    page, data = tmp_path / "d.html", tmp_path / "d.json"
    assert main(["diff", *models, "-o", str(page), "--json", str(data)]) == 0
    diff = GraphDiff.from_json(data.read_text())
    assert (diff.added_names, diff.removed_names, diff.changed_names) == (
        set(),
        {"bn/bn"},
        {"conv/op"},
    )
    assert diff.numerics is None
    assert page.read_text().lower().startswith("<!doctype html>")
    out = capsys.readouterr().out
    assert "a.onnx -> b.onnx: +0 -1 ~1 nodes, 1 unchanged; ops: -1 BatchNormalization" in out


def test_diff_with_inputs_adds_numerics(models, tmp_path, capsys):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.ones((1, 4, 6, 6), np.float32))
    data = tmp_path / "d.json"
    args = ["diff", *models, "-o", str(tmp_path / "d.html"), "--json", str(data)]
    assert main([*args, "--inputs", str(inputs)]) == 0
    numerics = GraphDiff.from_json(data.read_text()).numerics
    assert {t.name for t in numerics.tensors} == {"b", "y"}
    assert "no tensor diverges" in capsys.readouterr().out


def test_diff_missing_file_is_exit_1(models, tmp_path, capsys):
    assert main(["diff", models[0], str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "d")]) == 1
    assert "nope.onnx" in capsys.readouterr().err


def test_console_script_diff(models, tmp_path):
    page = tmp_path / "d.html"
    proc = subprocess.run(
        [str(QDQFORGE), "diff", *models, "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert page.is_file() and "wrote" in proc.stdout
