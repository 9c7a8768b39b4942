"""Checks shared by the PTQ and QAT ``.cfg`` readers: layer names, layer types, duplicates."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from qdqforge.front.config.issues import Issues


def check_names(
    names: Iterable[str], field: str, known: Collection[str], issues: Issues, what: str = "layer"
) -> None:
    """Record duplicates in ``names`` and names not in ``known`` (with a did-you-mean)."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        path = f"{field}[{index}]"
        if name in seen:
            issues.add(path, name, f"each {what} listed once in {field}")
        elif name not in known:
            issues.unknown_key(field, name, known, what=what, at=path)
        seen.add(name)
