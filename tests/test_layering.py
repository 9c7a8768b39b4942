"""Code layers and size: passes/, graph/ and runtime/ never import front/; files stay small.

Every module's source is parsed with ``ast`` and every import is checked, including imports
inside functions (a lazy import is still an upward dependency) and
``importlib.import_module("qdqforge.front...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER_LAYERS = ("passes", "graph", "runtime")
FORBIDDEN = "qdqforge.front"


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import and literal ``import_module`` call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _is_import_module(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def front_imports(source: str) -> list[str]:
    """``"line N: module"`` for each import of ``qdqforge.front`` (or a submodule) in ``source``."""
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(ast.parse(source))
        if module == FORBIDDEN or module.startswith(FORBIDDEN + ".")
    ]


def test_finder_sees_top_level_lazy_and_dynamic_imports():
    source = (
        "import qdqforge.front.config\n"
        "from qdqforge import front\n"
        "def f():\n"
        "    from qdqforge.front.config.ptq import QuantConfig\n"
        "    return importlib.import_module('qdqforge.front.entry')\n"
        "from qdqforge.frontier import x\n"
        "from qdqforge.graph import io\n"
    )
    assert front_imports(source) == [
        "line 1: qdqforge.front.config",
        "line 2: qdqforge.front",
        "line 4: qdqforge.front.config.ptq.QuantConfig",
        "line 5: qdqforge.front.entry",
    ]


@pytest.mark.parametrize("folder", LOWER_LAYERS)
def test_lower_layers_do_not_import_front(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in files
        if (hits := front_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


MAX_LINES = 300


def test_no_source_file_is_over_300_lines():
    """Small files: every module of the four code folders and of qdqforge/ fits 300 lines."""
    folders = ("front", "graph", "passes", "runtime", "qdqforge")
    long_files = {
        str(path.relative_to(ROOT)): lines
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long_files == {}
