"""Resolve type names in compiled ``FileDescriptorProto``s the way protoc does.

A name written inside message ``pkg.A.B`` is looked up as ``pkg.A.B.T``, ``pkg.A.T``, ``pkg.T``,
``T`` (innermost scope first); a leading dot means fully qualified. Each field then gets its
``type`` (message or enum) and a fully qualified ``type_name``, so the descriptor pool never has
to guess.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2

from qdqforge.front.proto.lexer import ProtoSchemaError

FDP = descriptor_pb2.FieldDescriptorProto


def resolve_types(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
    """Fill in ``type``/``type_name`` of every named-type field, in place.

    Raises:
        ProtoSchemaError: a type name matches nothing; the message names file, message and field.
    """
    files = list(files)
    symbols: dict[str, int] = {}
    for proto in files:
        _collect(proto.package, proto.message_type, proto.enum_type, symbols)
    for proto in files:
        for msg in proto.message_type:
            _resolve_message(proto, _join(proto.package, msg.name), msg, symbols)


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def _collect(scope: str, messages, enums, symbols: dict[str, int]) -> None:
    for enum in enums:
        symbols[_join(scope, enum.name)] = FDP.TYPE_ENUM
    for msg in messages:
        full = _join(scope, msg.name)
        symbols[full] = FDP.TYPE_MESSAGE
        _collect(full, msg.nested_type, msg.enum_type, symbols)


def _resolve_message(proto, scope: str, msg: descriptor_pb2.DescriptorProto, symbols) -> None:
    for field in msg.field:
        if field.HasField("type"):
            continue
        full = _lookup(field.type_name, scope, symbols)
        if full is None:
            raise ProtoSchemaError(
                f"{proto.name}: {scope}.{field.name}: unknown type {field.type_name!r}"
            )
        field.type, field.type_name = symbols[full], "." + full
    for nested in msg.nested_type:
        _resolve_message(proto, _join(scope, nested.name), nested, symbols)


def _lookup(name: str, scope: str, symbols: dict[str, int]) -> str | None:
    if name.startswith("."):
        return name[1:] if name[1:] in symbols else None
    parts = scope.split(".") if scope else []
    for depth in range(len(parts), -1, -1):
        candidate = _join(".".join(parts[:depth]), name)
        if candidate in symbols:
            return candidate
    return None
