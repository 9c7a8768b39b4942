"""Turn ``.proto`` text into a ``FileDescriptorProto`` without ``protoc``.

Supported subset (all our schemas need, proto2 only): ``syntax``, ``package``, ``import``,
``option`` (ignored), nested ``message`` and ``enum``, ``optional``/``required``/``repeated``
scalar, message and enum fields, ``oneof`` and the ``[default = ...]`` field option (other field
options are ignored). Anything else is a ProtoSchemaError naming the file and line. Type names are
left as written here and resolved by :mod:`qdqforge.front.proto.resolve`.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from qdqforge.front.proto.lexer import ProtoSchemaError, Token, tokenize, unquote

FDP = descriptor_pb2.FieldDescriptorProto
LABELS = {
    "optional": FDP.LABEL_OPTIONAL,
    "required": FDP.LABEL_REQUIRED,
    "repeated": FDP.LABEL_REPEATED,
}


class _Parser:
    def __init__(self, tokens: list[Token], filename: str) -> None:
        self.tokens, self.pos, self.filename = tokens, 0, filename

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def fail(self, message: str) -> ProtoSchemaError:
        token = self.peek()
        where = token.line if token else "end of file"
        return ProtoSchemaError(f"{self.filename}:{where}: {message}")

    def next(self, expected: str | None = None, kind: str | None = None) -> Token:
        token = self.peek()
        if token is None or (expected and token.text != expected) or (kind and token.kind != kind):
            raise self.fail(f"expected {expected or kind}, found {token.text if token else 'EOF'}")
        self.pos += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text:
            self.pos += 1
            return True
        return False

    def constant(self) -> str:
        sign = "-" if self.accept("-") else ""
        token = self.next()
        if token.kind == "string":
            return unquote(token.text)
        return sign + token.text

    def skip_statement(self) -> None:
        while not self.accept(";"):
            self.next()


def compile_proto(source: str, filename: str) -> descriptor_pb2.FileDescriptorProto:
    """Parse ``.proto`` text into a FileDescriptorProto named ``filename``.

    Raises:
        ProtoSchemaError: the text is outside the supported subset; the message names the line.
    """
    parser = _Parser(tokenize(source, filename), filename)
    proto = descriptor_pb2.FileDescriptorProto(name=filename, syntax="proto2")
    while parser.peek() is not None:
        _file_statement(parser, proto)
    return proto


def _file_statement(p: _Parser, proto: descriptor_pb2.FileDescriptorProto) -> None:
    keyword = p.next(kind="ident").text
    if keyword == "syntax":
        p.next("=")
        syntax = unquote(p.next(kind="string").text)
        if syntax != "proto2":
            raise p.fail(f"only proto2 schemas are supported, not {syntax!r}")
        p.next(";")
    elif keyword == "package":
        proto.package = p.next(kind="ident").text
        p.next(";")
    elif keyword == "import":
        p.accept("public") or p.accept("weak")
        proto.dependency.append(unquote(p.next(kind="string").text))
        p.next(";")
    elif keyword == "option":
        p.skip_statement()
    elif keyword == "message":
        _message(p, proto.message_type.add())
    elif keyword == "enum":
        _enum(p, proto.enum_type.add())
    else:
        raise p.fail(f"unsupported statement {keyword!r}")


def _message(p: _Parser, msg: descriptor_pb2.DescriptorProto) -> None:
    msg.name = p.next(kind="ident").text
    p.next("{")
    while not p.accept("}"):
        token = p.next()
        if token.text == "message":
            _message(p, msg.nested_type.add())
        elif token.text == "enum":
            _enum(p, msg.enum_type.add())
        elif token.text == "oneof":
            _oneof(p, msg)
        elif token.text in LABELS:
            _field(p, msg.field.add(), LABELS[token.text])
        elif token.text in ("option", "reserved", "extensions"):
            p.skip_statement()
        elif token.text != ";":
            raise p.fail(f"unsupported member {token.text!r} in message {msg.name}")


def _oneof(p: _Parser, msg: descriptor_pb2.DescriptorProto) -> None:
    msg.oneof_decl.add(name=p.next(kind="ident").text)
    p.next("{")
    while not p.accept("}"):
        if p.accept("option"):
            p.skip_statement()
            continue
        field = msg.field.add(oneof_index=len(msg.oneof_decl) - 1)
        _field(p, field, FDP.LABEL_OPTIONAL)


def _field(p: _Parser, field: FDP, label: int) -> None:
    field.label = label
    type_name = p.next(kind="ident").text
    scalar = SCALARS.get(type_name)
    if scalar is None:
        field.type_name = type_name  # resolved later, with the scope it was written in
    else:
        field.type = scalar
    field.name = p.next(kind="ident").text
    p.next("=")
    field.number = int(p.next(kind="number").text, 0)
    if p.accept("["):
        _field_options(p, field)
    p.next(";")


def _field_options(p: _Parser, field: FDP) -> None:
    while True:
        name = p.next(kind="ident").text
        p.next("=")
        value = p.constant()
        if name == "default":
            field.default_value = value
        if not p.accept(","):
            break
    p.next("]")


def _enum(p: _Parser, enum: descriptor_pb2.EnumDescriptorProto) -> None:
    enum.name = p.next(kind="ident").text
    p.next("{")
    while not p.accept("}"):
        token = p.next()
        if token.text in ("option", "reserved"):
            p.skip_statement()
            continue
        p.next("=")
        number = int(p.constant(), 0)
        if p.accept("["):
            while not p.accept("]"):
                p.next()
        p.next(";")
        enum.value.add(name=token.text, number=number)


SCALARS = {
    "double": FDP.TYPE_DOUBLE,
    "float": FDP.TYPE_FLOAT,
    "int64": FDP.TYPE_INT64,
    "uint64": FDP.TYPE_UINT64,
    "int32": FDP.TYPE_INT32,
    "fixed64": FDP.TYPE_FIXED64,
    "fixed32": FDP.TYPE_FIXED32,
    "bool": FDP.TYPE_BOOL,
    "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES,
    "uint32": FDP.TYPE_UINT32,
    "sfixed32": FDP.TYPE_SFIXED32,
    "sfixed64": FDP.TYPE_SFIXED64,
    "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
}
