"""Write a doctor :class:`Report` as one self-contained, offline HTML page.

The page is ``doctor_template.html`` with the report's JSON in a ``<script
type="application/json">`` tag (the diff viewer's conventions: inline JS/CSS, a
Content-Security-Policy that forbids every request). Its JS draws the summary, the skip list, a
sortable per-layer table and, per layer, the fidelities, quantization parameters and the
per-channel input ranges before/after DMQ as inline SVG.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from importlib import resources
from pathlib import Path

from qdqforge.errors import OutputError, QdqforgeError
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)

TEMPLATE = "doctor_template.html"
PLACEHOLDER = "__DOCTOR_JSON__"
DATA_TAG = '<script type="application/json" id="doctor-data">'
# Inside <script> only "</script" or "<!--" can end the data early (see graph/diff_html.py).
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def render_report_html(report) -> str:
    """The page for ``report`` as a string."""
    data = report.to_json()
    for char, escape in _ESCAPES.items():
        data = data.replace(char, escape)
    return _template().replace(PLACEHOLDER, data, 1)


def write_report_html(report, path: str | os.PathLike) -> Path:
    """Write the page for ``report`` atomically; returns the path.

    Raises:
        OutputError: ``path`` is a directory.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write the doctor page to {os.fspath(target)!r}: a directory")
    atomic_write_text(target, render_report_html(report))
    log.info("wrote doctor page %s", target)
    return target


def read_report_html(path: str | os.PathLike):
    """The :class:`Report` embedded in a page written by :func:`write_report_html`."""
    from qdqforge.front.doctor.report import Report

    text = Path(path).read_text(encoding="utf-8")
    start = text.find(DATA_TAG)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise QdqforgeError(f"{os.fspath(path)!r} holds no embedded doctor report")
    return Report.from_json(text[start + len(DATA_TAG) : end])


@cache
def _template() -> str:
    return resources.files("qdqforge.front.doctor").joinpath(TEMPLATE).read_text(encoding="utf-8")
