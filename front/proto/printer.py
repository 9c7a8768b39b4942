"""Protobuf text of a message as ``text_format.MessageToString`` prints it, in fewer calls.

protobuf's printer is pure Python with several calls per field (name, separator, value, line
end, each through a writer): a MobileNetV3-Large record (735 KB, 35,000 fields) took 0.08-0.1 s
each time a flow wrote it (``quantize_model``, the end of calibration, DMQ), and an
EfficientNet-Lite0 record is larger still. :func:`message_text` walks ``ListFields()`` the same
way (set fields in field-number order, a sub-message as ``name {`` ... ``}`` two spaces deeper)
and formats each value by the same rules as ``text_format``'s ``PrintFieldValue``:

* float: ``str(ToShortestFloat(v))`` (protobuf's own function), ``nan`` as ``str``;
* string: ``"`` + ``CEscape(v, as_utf8=True)`` + ``"`` (non-ASCII characters as they are,
  quotes, backslashes and control characters escaped); bytes: ``CEscape(v, as_utf8=False)``
  (every non-ASCII byte as an octal escape);
* enum: the value's name, or its number when the enum has no such value;
* bool: ``true`` / ``false``; every other number: ``str``.

``as_utf8=True`` is given explicitly (the default of protobuf 7, which this project is tested
with; a release with another default would escape non-ASCII characters as octal), so a
record's text does not depend on the protobuf release.

What it does not print the same way (an ``Any``, map fields, extensions, groups) is left to
``text_format`` for the whole message. tests/front/proto/test_printer.py compares the two byte
for byte, and the text parses back to the message (:func:`qdqforge.front.proto.text.to_text`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from google.protobuf import descriptor, text_encoding, text_format
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

_Field = descriptor.FieldDescriptor
ANY_TYPE = "google.protobuf.Any"


class _LeftToTextFormatError(Exception):
    """The message holds something :func:`message_text` does not print itself."""


def message_text(msg: Message) -> str:
    """``text_format.MessageToString(msg, as_utf8=True)`` (module docstring)."""
    lines: list[str] = []
    try:
        _append_fields(msg, "", lines)
    except _LeftToTextFormatError:
        return text_format.MessageToString(msg, as_utf8=True)
    return "".join(lines)


def _append_fields(msg: Message, indent: str, lines: list[str]) -> None:
    if msg.DESCRIPTOR.full_name == ANY_TYPE:
        raise _LeftToTextFormatError
    for field, value in msg.ListFields():
        if field.is_extension or field.type == _Field.TYPE_GROUP or _is_map(field):
            raise _LeftToTextFormatError
        values = value if _is_repeated(field) else (value,)
        if field.cpp_type == _Field.CPPTYPE_MESSAGE:
            inner = indent + "  "
            for sub in values:
                lines.append(f"{indent}{field.name} {{\n")
                _append_fields(sub, inner, lines)
                lines.append(f"{indent}}}\n")
        else:
            head, text = f"{indent}{field.name}: ", _formatter(field)
            lines.extend([f"{head}{text(v)}\n" for v in values])


def _is_repeated(field: _Field) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.29; label before
    return repeated if repeated is not None else field.label == _Field.LABEL_REPEATED


def _is_map(field: _Field) -> bool:
    return (
        field.type == _Field.TYPE_MESSAGE
        and field.message_type.has_options
        and field.message_type.GetOptions().map_entry
    )


def _formatter(field: _Field) -> Callable[[object], str]:
    kind = field.cpp_type
    if kind == _Field.CPPTYPE_FLOAT:
        return _float_text
    if kind == _Field.CPPTYPE_BOOL:
        return _bool_text
    if kind == _Field.CPPTYPE_STRING:
        return _bytes_text if field.type == _Field.TYPE_BYTES else _string_text
    if kind == _Field.CPPTYPE_ENUM:
        by_number = field.enum_type.values_by_number
        return lambda number: by_number[number].name if number in by_number else str(number)
    return str


def _float_text(value: float) -> str:
    return str(value) if math.isnan(value) else str(type_checkers.ToShortestFloat(value))


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _string_text(value: str) -> str:
    return f'"{text_encoding.CEscape(value, True)}"'


def _bytes_text(value: bytes) -> str:
    return f'"{text_encoding.CEscape(value, False)}"'
