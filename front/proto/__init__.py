"""AMCT-compatible protobuf schemas (``*.proto`` package data) and their runtime classes.

``message_class("AMCTConfig")`` returns a class built from ``calibration_config_pytorch.proto``
without protoc; :mod:`~qdqforge.front.proto.text` parses protobuf text with protobuf's own
``text_format`` and prints the text it prints (:mod:`~qdqforge.front.proto.printer`).
"""

from __future__ import annotations

from qdqforge.front.proto.lexer import ProtoSchemaError
from qdqforge.front.proto.schema import SCHEMA_FILES, compile_schemas, message_class

__all__ = ["SCHEMA_FILES", "ProtoSchemaError", "compile_schemas", "message_class"]
