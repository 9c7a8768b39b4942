"""No CLI output carries a control character from a file: names cannot fake or clear lines.

``test_cli_prints_only_through_say`` is an AST scan of ``qdqforge/cli``: its only ``print`` is
``say``'s. The hypothesis properties put arbitrary names (any Unicode, ``\\x1b[2J``, ``\\r``,
``\\n``, bidi overrides) into a record's layers and into an ONNX's node, tensor and op names,
run ``record show``, ``passes ops``/``run``/``bisect`` and ``diff``, and check that stdout and
stderr hold no control or format character but the CLI's own newlines, and exactly as many lines
as with a plain name (a ``\\n`` inside a name cannot add a line).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from qdqforge.cli.main import main
from qdqforge.front.record.file import LayerRecord, write_record
from qdqforge.safe_text import UNSAFE, shown

ROOT = Path(__file__).resolve().parents[2]
NASTY = ["\x1b[2J\x1b[HALL CHECKS PASSED", "a\rALL OK", "x\ny", "\u202egnp.exe", "\x00\x7f\x85"]
NAMES = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10),
)


def test_cli_prints_only_through_say():
    hits = []
    for path in sorted((ROOT / "qdqforge" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
            if name == "print" or name.startswith(("sys.stdout", "sys.stderr")):
                hits.append(f"{path.name}:{node.lineno} {name}")
    assert hits == ["say.py:19 print"]


def test_shown_escapes_exactly_the_unsafe_characters():
    text = "".join(chr(c) for c in range(0x3000))
    out = shown(text)
    assert not [ch for ch in out if unicodedata.category(ch) in UNSAFE]
    assert shown("conv1.ü 层") == "conv1.ü 层" and shown("a\nb") == "a\\nb"


def _clean(capsys) -> tuple[list[str], list[str]]:
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        bad = [ch for ch in text if ch != "\n" and unicodedata.category(ch) in UNSAFE]
        assert bad == [], f"raw control characters {bad!r} in {text!r}"
    return captured.out.splitlines(), captured.err.splitlines()


def _run(capsys, argv) -> tuple[int, list[str], list[str]]:
    code = main(argv)
    out, err = _clean(capsys)
    return code, out, err


FIXTURES = [HealthCheck.function_scoped_fixture]  # capsys is read out after every command


@settings(suppress_health_check=FIXTURES)
@given(name=NAMES)
def test_record_show_escapes_layer_names(tmp_path_factory, capsys, name):
    assume(name != "fc")  # the record's other layer: one entry would overwrite the other
    folder = tmp_path_factory.mktemp("rec")
    shapes = []
    for layer in (name, "plain"):
        path = folder / f"{len(shapes)}.txt"
        write_record(path, {layer: LayerRecord(scale_d=0.1, offset_d=3), "fc": LayerRecord()})
        code, out, _ = _run(capsys, ["record", "show", str(path)])
        shapes.append((code, len(out)))
        assert any(shown(layer) in line for line in out)
    assert shapes[0] == shapes[1]


def _graph(name: str, op: str = "Relu", domain: str = "") -> onnx.ModelProto:
    nodes = [
        helper.make_node(op, ["x"], [name], name=name, domain=domain),
        helper.make_node("Neg", [name], ["y"], name="neg"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets)


def _save(folder: Path, model: onnx.ModelProto, name: str) -> str:
    path = folder / name
    onnx.save(model, path)
    return str(path)


def _commands(folder: Path, name: str) -> list[list[str]]:
    unsupported = _save(folder, _graph(name, op=name or "x", domain="evil.domain"), "u.onnx")
    a = _save(folder, _graph(name), "a.onnx")
    b = _save(folder, _graph(name, op="Abs"), "b.onnx")
    inputs = folder / "x.npz"
    np.savez(inputs, x=np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    return [
        ["passes", "ops", unsupported],
        ["passes", "run", unsupported, "--dump-dir", str(folder / "d1")],
        ["passes", "run", a, "--dump-dir", str(folder / "d2"), "--inputs", str(inputs)],
        ["passes", "bisect", b, "--inputs", str(inputs), "--pipeline", "canonicalize"],
        ["diff", a, b, "-o", str(folder / "d.html"), "--inputs", str(inputs)],
    ]


@settings(max_examples=25, suppress_health_check=FIXTURES)  # 10 CLI runs of ~0.2 s each
@given(name=NAMES.filter(lambda n: n not in ("x", "y", "neg")))
def test_graph_commands_escape_names(tmp_path_factory, capsys, name):
    results = []
    for label in (name, "plain"):
        folder = tmp_path_factory.mktemp("cli")
        results.append([_run(capsys, argv) for argv in _commands(folder, label)])
    evil, plain = results
    assert [(c, len(o), len(e)) for c, o, e in evil] == [(c, len(o), len(e)) for c, o, e in plain]
    diff_out = evil[-1][1]
    assert f"first diverging tensor: {shown(name)}" in diff_out


@pytest.mark.parametrize("name", NASTY[:3])
def test_log_lines_are_escaped(tmp_path, name):
    """In a fresh process (pytest's own log handler would keep the CLI's from being installed):
    ``-v`` logs the diff's first diverging tensor by name."""
    argv = ["-v", *_commands(tmp_path, name)[-1]]
    code = f"from qdqforge.cli.main import main; raise SystemExit(main({argv!r}))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert child.returncode == 0, child.stderr[-2000:]
    assert shown(name) in child.stderr
    bad = [ch for ch in child.stderr if ch != "\n" and unicodedata.category(ch) in UNSAFE]
    assert bad == []


def test_doctor_summary_escapes_layer_names():
    """The doctor's layer names are module names: a ModuleDict key can hold anything."""
    from types import SimpleNamespace

    from qdqforge.cli.doctor import summary
    from qdqforge.front.analysis.doctor.fidelity import Fidelity

    fid = Fidelity(20.0, 0.99, 0.1)
    layer = SimpleNamespace(quantized=fid, cause="outlier\x1b[31m")
    names = [f"blocks.{n}" for n in NASTY]
    report = SimpleNamespace(
        model=fid, with_skips=fid, layers=names, ranking=names, skip=names[:2], skip_db=6.0
    )
    report.layer = lambda name: layer
    text = summary(report)
    assert len(text.split("\n")) == 2 + len(names) + 2
    assert not [ch for ch in text if ch != "\n" and unicodedata.category(ch) in UNSAFE]
