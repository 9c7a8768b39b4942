"""Parse and print protobuf text with protobuf's own ``text_format``.

Parse failures become the caller's error class (ConfigError for ``.cfg``, RecordError for records)
with ``source:line:column`` in front, and missing ``required`` fields are reported too (protobuf's
text parser does not check them).
"""

from __future__ import annotations

import difflib
import math
import re

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message

from qdqforge.errors import QdqforgeError
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
    msg = message_class(message)()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        where = f"{source}:{e.GetLine()}:{e.GetColumn()}" if e.GetLine() else source
        raise error(f"{where}: {_strip_position(str(e))}{_did_you_mean(str(e))}") from e
    missing = msg.FindInitializationErrors()
    if missing:
        raise error(f"{source}: required field(s) missing: {', '.join(sorted(missing))}")
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
    """Deterministic protobuf text of ``msg`` (fields in schema order, floats shortest repr)."""
    return text_format.MessageToString(msg)


def proto_float(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (0.00999999977 -> 0.01)."""
    if not math.isfinite(value):
        return float(value)
    return float(str(np.float32(value)))
