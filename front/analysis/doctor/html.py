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
from pathlib import Path

from qdqforge.errors import OutputError, QdqforgeError
from qdqforge.graph.html_page import embed_json, embedded_json, package_template
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)

TEMPLATE = "doctor_template.html"
PLACEHOLDER = "__DOCTOR_JSON__"
DATA_TAG = '<script type="application/json" id="doctor-data">'


def render_report_html(report) -> str:
    """The page for ``report`` as a string."""
    template = package_template("qdqforge.front.analysis.doctor", TEMPLATE)
    return embed_json(template, PLACEHOLDER, report.to_json())


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
    from qdqforge.front.analysis.doctor.report import Report

    data = embedded_json(path, DATA_TAG)
    if data is None:
        raise QdqforgeError(f"{os.fspath(path)!r} holds no embedded doctor report")
    return Report.from_json(data)
