"""Write a :class:`GraphDiff` as one self-contained, offline HTML page.

The page is ``diff_template.html`` with the diff's JSON in a ``<script type="application/json">``
tag; its inline JS draws the header, op-count table, IO changes, the changed neighbourhood (SVG,
laid out by the page itself) and the Added/Removed/Changed/Initializers/Numerics tabs, rendering
rows on demand so a 10k-node diff stays responsive. Nothing is fetched: a Content-Security-Policy
forbids any request.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from importlib import resources
from pathlib import Path

from qdqforge.errors import GraphError
from qdqforge.graph.diff_model import GraphDiff
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)

TEMPLATE = "diff_template.html"
PLACEHOLDER = "__GRAPHDIFF_JSON__"
# Inside <script> only "</script" or "<!--" can end the data early; escaping every "<", ">" and
# "&" as \\u escapes keeps the JSON valid and the tag closed.
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def render_diff_html(diff: GraphDiff) -> str:
    """The page for ``diff`` as a string."""
    data = diff.to_json()
    for char, escape in _ESCAPES.items():
        data = data.replace(char, escape)
    return _template().replace(PLACEHOLDER, data, 1)


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
    target = Path(path)
    if target.is_dir():
        raise GraphError(f"cannot write the diff page to {os.fspath(target)!r}: it is a directory")
    atomic_write_text(target, render_diff_html(diff))
    log.info("wrote graph diff page %s", target)
    return target


def read_diff_html(path: str | os.PathLike) -> GraphDiff:
    """The GraphDiff embedded in a page written by :func:`write_diff_html`.

    Raises:
        GraphError: the file has no embedded GraphDiff.
    """
    text = Path(path).read_text(encoding="utf-8")
    start_tag = '<script type="application/json" id="graphdiff-data">'
    start = text.find(start_tag)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise GraphError(f"{os.fspath(path)!r} holds no embedded graph diff")
    return GraphDiff.from_json(text[start + len(start_tag) : end])


@cache
def _template() -> str:
    return resources.files("qdqforge.graph").joinpath(TEMPLATE).read_text(encoding="utf-8")
