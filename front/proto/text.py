"""Parse protobuf text with protobuf's own ``text_format``; print it as ``text_format`` does.

Parse failures become the caller's error class (ConfigError for ``.cfg``, RecordError for records)
with ``source:line:column`` in front, and missing ``required`` fields are reported too (protobuf's
text parser does not check them).

protobuf's text parser is pure Python: a ResNet-18 record (200 KB, 9,700 fields) takes 0.19 s
to parse, and one PTQ flow reads its record about eight times (quantize_model, the end of
calibration, save_model; each update reads before it writes). So texts parsed or printed in
this process are remembered by the SHA-256 of their content (:class:`_ParsedTexts`): the same
text gives the same message without parsing again (a copy, from protobuf's binary form), and
any other text, however close, is parsed. Content, not file names or times: it cannot go
stale.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import threading
from collections import OrderedDict

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message

from qdqforge.errors import QdqforgeError
from qdqforge.front.proto.printer import message_text
from qdqforge.front.proto.schema import message_class

_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "?(\w+)"?')


def parse_text(
    text: str, message: str, error: type[QdqforgeError], source: str = "<text>"
) -> Message:
    """Parse ``text`` as message type ``message``.

    Args:
        text: protobuf text.
        message: message name, e.g. ``"AMCTConfig"``.
        error: the QdqforgeError subclass to raise.
        source: file name used in messages.

    Returns:
        The parsed message.

    Raises:
        error: syntax error, unknown field or enum value (with line and column), or a missing
            required field (with its path).
    """
    kind = message_class(message)
    key = _PARSED.key(kind, text)
    known = _PARSED.get(key, kind)
    if known is not None:
        return known
    msg = kind()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        where = f"{source}:{e.GetLine()}:{e.GetColumn()}" if e.GetLine() else source
        raise error(f"{where}: {_strip_position(str(e))}{_did_you_mean(str(e))}") from e
    missing = msg.FindInitializationErrors()
    if missing:
        raise error(f"{source}: required field(s) missing: {', '.join(sorted(missing))}")
    _PARSED.put(key, msg)
    return msg


def _strip_position(text: str) -> str:
    head, sep, tail = text.partition(" : ")
    return tail if sep and head.replace(":", "").isdigit() else text


def _did_you_mean(text: str) -> str:
    match = _NO_FIELD.search(text)
    if match is None:
        return ""
    try:
        fields = message_class(match.group(1)).DESCRIPTOR.fields_by_name
    except KeyError:
        return ""
    close = difflib.get_close_matches(match.group(2), list(fields), n=3)
    allowed = ", ".join(close or sorted(fields))
    return f" (did you mean: {allowed})" if close else f" (allowed: {allowed})"


def to_text(msg: Message) -> str:
    """Deterministic protobuf text of ``msg`` (fields in schema order, floats shortest repr).

    The text is ``text_format.MessageToString``'s, printed by :func:`.printer.message_text`.
    Parsing the text gives ``msg`` back (tests/front/proto), so a complete message is
    remembered as that text's parse (module docstring).
    """
    text = message_text(msg)
    if msg.IsInitialized():
        _PARSED.put(_PARSED.key(type(msg), text), msg)
    return text


class _ParsedTexts:
    """The last :data:`ENTRIES` messages parsed or printed, by message type and text digest,
    held in protobuf's binary form (every hit returns a fresh message)."""

    ENTRIES = 16

    def __init__(self) -> None:
        self._binary: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: type, text: str) -> tuple[str, bytes]:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        return kind.DESCRIPTOR.full_name, digest

    def get(self, key: tuple[str, bytes], kind: type) -> Message | None:
        with self._lock:
            binary = self._binary.get(key)
            if binary is None:
                return None
            self._binary.move_to_end(key)
        return kind.FromString(binary)

    def put(self, key: tuple[str, bytes], msg: Message) -> None:
        binary = msg.SerializeToString()
        with self._lock:
            self._binary[key] = binary
            self._binary.move_to_end(key)
            while len(self._binary) > self.ENTRIES:
                self._binary.popitem(last=False)


_PARSED = _ParsedTexts()


def proto_float(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (0.00999999977 -> 0.01)."""
    if not math.isfinite(value):
        return float(value)
    return float(str(np.float32(value)))
