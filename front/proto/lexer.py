"""Tokenizer for the subset of the ``.proto`` language our schemas use (see ``compiler``).

Comments (``//`` and ``/* */``) and whitespace are dropped; every token keeps its line number so
schema errors can name the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qdqforge.errors import QdqforgeError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>\.?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<symbol>[{}\[\]()<>=;,\-+])
    """,
    re.VERBOSE | re.DOTALL,
)


class ProtoSchemaError(QdqforgeError):
    """A ``.proto`` file kept in the package is not valid (a broken invariant of the package)."""


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is string, number, ident or symbol; ``text`` is the raw text."""

    kind: str
    text: str
    line: int


def tokenize(source: str, filename: str = "<proto>") -> list[Token]:
    """Split ``.proto`` text into tokens, or raise ProtoSchemaError naming the line."""
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise ProtoSchemaError(f"{filename}:{line}: unexpected character {source[pos]!r}")
        kind, text = match.lastgroup, match.group()
        if kind not in ("ws", "comment"):
            tokens.append(Token(kind, text, line))
        line += text.count("\n")
        pos = match.end()
    return tokens


def unquote(text: str) -> str:
    """Value of a quoted string token (C-style escapes as in protobuf text)."""
    body = text[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
