"""One self-contained offline HTML page: a packaged template with JSON embedded in a script tag.

Shared by the graph diff viewer and the doctor report: the page head (``page_head.html``: the
doctype, charset, viewport, the Content-Security-Policy that forbids every request and ``el``, the
DOM builder both page scripts use; each template continues from its ``<title>``), rendering,
writing (atomically, refusing a directory with the caller's error type) and reading the data back.
Inside ``<script>`` only ``</script`` or ``<!--`` can end the data early; escaping every ``<``,
``>`` and ``&`` as ``\\u`` escapes keeps the JSON valid and the tag closed.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from importlib import resources
from pathlib import Path

from qdqforge.errors import QdqforgeError
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)

PAGE_HEAD = "page_head.html"
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


@cache
def package_template(package: str, name: str) -> str:
    """The shared page head, then template ``name`` shipped in ``package`` (read once)."""
    return _read(__package__, PAGE_HEAD) + _read(package, name)


def _read(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def embed_json(template: str, placeholder: str, data: str) -> str:
    """``template`` with its first ``placeholder`` replaced by the escaped JSON ``data``."""
    for char, escape in _ESCAPES.items():
        data = data.replace(char, escape)
    return template.replace(placeholder, data, 1)


def embedded_json(path: str | os.PathLike, data_tag: str) -> str | None:
    """The JSON text after ``data_tag`` up to its ``</script>``, or None when absent."""
    text = Path(path).read_text(encoding="utf-8")
    start = text.find(data_tag)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        return None
    return text[start + len(data_tag) : end]


def write_page(path: str | os.PathLike, page: str, what: str, error: type[QdqforgeError]) -> Path:
    """Write ``page`` to ``path`` atomically (temp file, then rename); returns the path.

    Raises:
        ``error``: ``path`` is a directory (the message names ``what`` and the path).
    """
    target = Path(path)
    if target.is_dir():
        raise error(f"cannot write the {what} to {os.fspath(target)!r}: it is a directory")
    atomic_write_text(target, page)
    log.info("wrote %s %s", what, target)
    return target


def read_embedded(
    path: str | os.PathLike, data_tag: str, what: str, error: type[QdqforgeError]
) -> str:
    """The JSON text embedded after ``data_tag`` in the page at ``path``.

    Raises:
        ``error``: the page holds no ``data_tag`` (the message names ``what`` and the path).
    """
    data = embedded_json(path, data_tag)
    if data is None:
        raise error(f"{os.fspath(path)!r} holds no embedded {what}")
    return data
