"""Write a doctor :class:`Report` as one self-contained, offline HTML page.

The page is ``doctor_template.html`` with the report's JSON in a ``<script
type="application/json">`` tag (the diff viewer's conventions: inline JS/CSS, a
Content-Security-Policy that forbids every request). Its JS draws the summary, the skip list, a
sortable per-layer table and, per layer, the fidelities, quantization parameters and the
per-channel input ranges before/after DMQ as inline SVG.
"""

from __future__ import annotations

import os
from pathlib import Path

from qdqforge.errors import OutputError, QdqforgeError
from qdqforge.graph.html_page import embed_json, package_template, read_embedded, write_page

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
    return write_page(path, render_report_html(report), "doctor page", OutputError)


def read_report_html(path: str | os.PathLike):
    """The :class:`Report` embedded in a page written by :func:`write_report_html`."""
    from qdqforge.front.analysis.doctor.report import Report

    return Report.from_json(read_embedded(path, DATA_TAG, "doctor report", QdqforgeError))
