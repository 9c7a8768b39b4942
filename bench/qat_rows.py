"""The one table ``bench/qat.py`` prints: a row type and a left-aligned text renderer."""

from __future__ import annotations

from typing import NamedTuple

HEADER = ("part", "what", "result", "target", "met")


class Row(NamedTuple):
    """One line: benchmark part (a/b/c), what was measured, the number, its target, verdict."""

    part: str
    what: str
    result: str
    target: str = ""
    met: str = ""


def render(rows: list[Row]) -> str:
    """Columns padded to their widest cell; a dashed rule under the header."""
    table = [HEADER, *rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
