"""Text from files, made safe for a terminal: control characters never reach it raw.

A layer, tensor, op or file name is content of a file the user may not trust: ``\\x1b[2J``
clears the screen, ``\\r`` or ``\\n`` print a fake ``ALL CHECKS PASSED`` line, a bidi override
(U+202E) reverses what follows. :func:`shown` escapes every such character (Unicode categories
Cc, Cf, Zl, Zp: C0/C1 controls, DEL, format and bidi characters, line separators) the way
Python's ``repr`` writes it (``\\x1b``, ``\\n``, ``\\u202e``); ordinary text, accents and CJK
stay as they are. :func:`safe_lines` keeps a text's own line breaks and escapes each line.

The CLI (``qdqforge.cli.say``) prints only through :func:`safe_lines`, and every name it puts
into a line goes through :func:`shown` first, so a newline inside a name stays ``\\n``.
"""

from __future__ import annotations

import unicodedata

UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def shown(value: object) -> str:
    """``str(value)`` with every control/format character escaped (newlines and tabs too)."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in UNSAFE else ch for ch in text)


def safe_lines(text: str) -> str:
    """``text`` with its line breaks kept and everything else :func:`shown` escapes escaped."""
    return "\n".join(shown(line) for line in str(text).split("\n"))


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
