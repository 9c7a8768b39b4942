"""Every file the library writes goes through ``graph.io``'s atomic writers.

An AST scan of the library packages for the calls that write a file in place: ``write_text``,
``write_bytes``, ``open``/``Path.open`` with a writing mode, ``onnx.save*``, ``torch.save``,
``np.save*``. The three allowed ones write into a temp folder or a memory buffer first. Renames
and copies (``os.replace``, ``os.rename``, ``shutil.*``) live in ``graph/io.py`` only, behind
``graph.output_target``'s rule (read-only files refused, symlinks written through).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("front", "graph", "passes", "runtime", "qdqforge")
ALLOWED = {
    ("graph/io.py", "onnx.save_model"),  # into the temp folder that _save_external renames from
    ("front/entry/example_inputs.py", "np.savez"),  # into an io.BytesIO, then atomic_write_bytes
    ("graph/external.py", "open"),  # > 2 GB graphs, into the same temp folder as onnx.save_model
}
WRITERS = {"write_text", "write_bytes"}
SAVERS = {"onnx.save", "onnx.save_model", "torch.save", "np.save", "np.savez", "numpy.save"}
MOVERS = {"os.replace", "os.rename", "shutil.move", "shutil.copy", "shutil.copy2"}
MOVERS |= {"shutil.copyfile", "shutil.copytree"}
MOVERS_ALLOWED = {"graph/io.py"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Call):
        return f"{_name(func.func)}()"
    return func.id if isinstance(func, ast.Name) else "?"


def _writing_open(call: ast.Call) -> bool:
    name = _name(call.func)
    if name != "open" and not name.endswith(".open"):
        return False
    index = 1 if name == "open" else 0
    modes = [k.value for k in call.keywords if k.arg == "mode"]
    modes += [call.args[index]] if len(call.args) > index else []
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes)


def direct_writes(path: Path, rel: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        short = name.rsplit(".", 2)[-2:] if "." in name else [name]
        saver = ".".join(short) if ".".join(short) in SAVERS else None
        if ".".join(short) in MOVERS and rel not in MOVERS_ALLOWED:
            saver = ".".join(short)
        if saver or short[-1] in WRITERS or _writing_open(node):
            found.append((saver or name, node.lineno))
    return [f"{rel}:{line} {name}" for name, line in found if (rel, name) not in ALLOWED]


def test_the_library_writes_files_only_atomically():
    files = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    assert len(files) > 100
    hits = [hit for p in files for hit in direct_writes(p, p.relative_to(ROOT).as_posix())]
    assert hits == []


def test_the_scan_sees_direct_writes(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from pathlib import Path\nimport torch\n"
        "Path('a').write_text('x')\nopen('b', 'w')\nPath('c').open(mode='a')\n"
        "torch.save({}, 'd')\nopen('e')\nimport os, shutil\nos.replace('f', 'g')\n"
        "shutil.copy('h', 'i')\n"
    )
    hits = [hit.split(" ")[1] for hit in direct_writes(sample, "sample.py")]
    writes = ["Path().write_text", "open", "Path().open", "torch.save"]
    assert hits == [*writes, "os.replace", "shutil.copy"]
    assert [hit.split(" ")[1] for hit in direct_writes(sample, "graph/io.py")] == writes
