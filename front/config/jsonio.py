"""JSON text in and out: duplicate keys and non-finite numbers are errors, output is canonical.

Output is ``json.dumps(indent=4)`` plus a final newline (AMCT writes indent 4); key order is the
order the dataclasses emit, so writing, reading and writing again gives identical text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qdqforge.errors import ConfigError
from qdqforge.front.config.issues import Issues, join
from qdqforge.graph.io import atomic_write_text


class _Object(dict):
    """A JSON object that remembers the keys it saw more than once."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object()
    dups = []
    for key, value in pairs:
        if key in obj and key not in dups:
            dups.append(key)
        obj[key] = value
    obj.duplicates = tuple(dups)
    return obj


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(text: str, source: str) -> dict:
    """Parse config JSON; syntax errors and NaN/Infinity are ConfigErrors.

    Duplicate keys are remembered on each object; :func:`report_duplicates` lists them with the
    other violations of the file.

    Raises:
        ConfigError: naming line and column for syntax errors.
    """
    try:
        tree = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{source}: invalid JSON: {e}") from e
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: the config must be a JSON object, got {type(tree).__name__}")
    return tree


def report_duplicates(node: object, path: str, issues: Issues) -> None:
    """Record every key that appeared twice in one object of ``node`` (parsed by parse_json)."""
    if isinstance(node, dict):
        for key in getattr(node, "duplicates", ()):
            issues.note(join(path, key), "key appears more than once (JSON keys must be unique)")
        for key, value in node.items():
            report_duplicates(value, join(path, key), issues)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            report_duplicates(value, f"{path}[{index}]", issues)


def read_json(path: str | os.PathLike) -> dict:
    """Read and parse a config file (see :func:`parse_json`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {os.fspath(path)!r}: {e}") from e
    return parse_json(text, os.fspath(path))


def dump_json(tree: dict) -> str:
    """Canonical text: indent 4, keys in the given order, trailing newline."""
    return json.dumps(tree, indent=4, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, tree: dict) -> Path:
    """Write :func:`dump_json` text atomically; returns the path."""
    target = Path(path)
    atomic_write_text(target, dump_json(tree))
    return target
