"""Write a :class:`GraphDiff` as one self-contained, offline HTML page.

The page is ``diff_template.html`` with the diff's JSON in a ``<script type="application/json">``
tag; its inline JS draws the header, op-count table, IO changes, the changed neighbourhood (SVG,
laid out by the page itself) and the Added/Removed/Changed/Initializers/Numerics tabs, rendering
rows on demand so a 10k-node diff stays responsive. Nothing is fetched: a Content-Security-Policy
forbids any request.
"""

from __future__ import annotations

import os
from pathlib import Path

from qdqforge.errors import GraphError
from qdqforge.graph.diff.model import GraphDiff
from qdqforge.graph.html_page import embed_json, package_template, read_embedded, write_page

TEMPLATE = "diff_template.html"
PLACEHOLDER = "__GRAPHDIFF_JSON__"
DATA_TAG = '<script type="application/json" id="graphdiff-data">'


def render_diff_html(diff: GraphDiff) -> str:
    """The page for ``diff`` as a string."""
    template = package_template("qdqforge.graph.diff", TEMPLATE)
    return embed_json(template, PLACEHOLDER, diff.to_json())


def write_diff_html(diff: GraphDiff, path: str | os.PathLike) -> Path:
    """Write the page for ``diff`` to ``path`` atomically (temp file, then rename).

    Args:
        diff: the diff to show.
        path: the HTML file to write; its folder is created if missing.

    Returns:
        The path written.

    Raises:
        GraphError: ``path`` is a directory.
    """
    return write_page(path, render_diff_html(diff), "graph diff page", GraphError)


def read_diff_html(path: str | os.PathLike) -> GraphDiff:
    """The GraphDiff embedded in a page written by :func:`write_diff_html`.

    Raises:
        GraphError: the file has no embedded GraphDiff.
    """
    return GraphDiff.from_json(read_embedded(path, DATA_TAG, "graph diff", GraphError))
