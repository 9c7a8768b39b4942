"""The CLI's only way to print: every line through :func:`qdqforge.safe_text.safe_lines`.

An AST test (``tests/reliability/test_terminal_output.py``) finds any other ``print`` or
``sys.stdout``/``sys.stderr`` write in ``qdqforge/cli``. The logging handler the CLI installs
escapes log messages the same way (:class:`SafeFormatter`).
"""

from __future__ import annotations

import copy
import logging
import sys

from qdqforge.safe_text import safe_lines, shown


def say(text: object = "", *, err: bool = False) -> None:
    """Print ``text`` to stdout (``err``: stderr), control characters escaped."""
    print(safe_lines(str(text)), file=sys.stderr if err else sys.stdout)


class SafeFormatter(logging.Formatter):
    """A log line whose message has every control character (newlines too) escaped."""

    def format(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        record.msg, record.args = shown(record.getMessage()), None
        return safe_lines(super().format(record))
