"""Collect every violation of a config before raising one ConfigError listing them all.

Each violation names the key path (``layer1.0.conv1.activation_quant_params.search_step``), the
bad value and what is allowed. Key paths and names come from the user's files and modules: their
control characters are escaped (:func:`qdqforge.safe_text.shown`), so a message never carries a
raw newline or escape sequence of theirs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from qdqforge.errors import ConfigError
from qdqforge.safe_text import shown

_MISSING = object()


class Issues:
    """An ordered list of violations for one config source (file name or ``<dict>``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def add(self, path: str, value: object, allowed: str) -> None:
        """Record that ``value`` at ``path`` is invalid; ``allowed`` says what would be valid."""
        got = "missing" if value is _MISSING else f"got {_short(value)}"
        self.errors.append(f"{shown(path) or '<top>'}: {got}; allowed: {allowed}")

    def note(self, path: str, message: str) -> None:
        """Record a violation described by a free-form message."""
        self.errors.append(f"{shown(path) or '<top>'}: {message}")

    def unknown_key(
        self, path: str, key: str, allowed: Iterable[str], what: str = "key", at: str | None = None
    ) -> None:
        """Record an unknown key with a did-you-mean taken from ``allowed``.

        The violation is reported at ``path.key``, or at ``at`` when given.
        """
        allowed = sorted(allowed)
        close = difflib.get_close_matches(key, allowed, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else _listing(allowed)
        self.note(_join(path, key) if at is None else at, f"unknown {what} {key!r}; {hint}")

    def raise_if_any(self) -> None:
        """Raise one ConfigError listing every violation, if there is any."""
        if self.errors:
            lines = "\n".join(f"  - {e}" for e in self.errors)
            raise ConfigError(
                f"{shown(self.source)}: {len(self.errors)} invalid setting(s):\n{lines}",
                list(self.errors),
            )


def _listing(allowed: list[str]) -> str:
    allowed = [shown(name) for name in allowed]
    if len(allowed) > 12:
        return f"allowed: {', '.join(allowed[:12])}, ... ({len(allowed)} in all)"
    return f"allowed: {', '.join(allowed) or 'none'}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


MISSING = _MISSING
join = _join
