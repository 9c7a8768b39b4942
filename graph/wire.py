"""A saved ONNX file's inline weights found in its bytes: the model without them, and where.

Protobuf gives no view of a ``raw_data`` field: parsing a file copies every weight, and the
parse needs the file's bytes too, so reading back a saved model held twice its weights for a
moment and once after. :func:`split_weights` walks the protobuf wire format of a
``ModelProto`` instead (a mapped file, so only the headers it reads are faulted in):

* ``ModelProto`` field 7 (``graph``) -> ``GraphProto`` field 5 (``initializer``) ->
  ``TensorProto`` field 8 (``name``) and field 9 (``raw_data``);
* each top-level initializer of a fixed-size numeric type whose ``raw_data`` holds
  ``min_bytes`` or more, and whose name no other initializer has, becomes a :class:`Span`
  (offset and length in the file) and loses its ``raw_data`` in the returned skeleton: its
  enclosing messages' lengths are written anew, every other byte is copied as it is;
* the skeleton parses to the model ``onnx.load`` gives, less those ``raw_data`` fields (tested
  field for field).

A file that is not such a message (a wire type this walk does not read, a length past the end)
raises :class:`WireError`; the caller then reads the file as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.errors import GraphError

_GRAPH, _INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer
_DIMS, _DATA_TYPE, _NAME, _RAW_DATA = 1, 2, 8, 9  # TensorProto fields
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class WireError(GraphError):
    """The bytes are not a ModelProto this walk reads."""


@dataclass(frozen=True)
class Span:
    """One initializer's ``raw_data`` in the file: ``length`` bytes at ``offset``."""

    offset: int
    length: int


def split_weights(buf, min_bytes: int) -> tuple[onnx.ModelProto, dict[str, Span]]:
    """``(skeleton, {name: span})`` of the serialized ModelProto ``buf`` (module docstring)."""
    out, spans = bytearray(), {}
    end = len(buf)
    for number, wire, start, payload, stop in _fields(buf, 0, end):
        if number == _GRAPH and wire == _LENGTH:
            graph = _graph_without_weights(buf, payload, stop, min_bytes, spans)
            out += _key(_GRAPH, _LENGTH) + _varint(len(graph)) + graph
        else:
            out += buf[start:stop]
    try:
        skeleton = onnx.ModelProto.FromString(bytes(out))
    except Exception as e:  # a DecodeError of protobuf's: not a ModelProto
        raise WireError(f"not an ONNX model: {e}") from e
    return skeleton, spans


def _graph_without_weights(buf, begin: int, end: int, min_bytes: int, spans: dict) -> bytearray:
    tensors = [f for f in _fields(buf, begin, end) if f[0] == _INITIALIZER and f[1] == _LENGTH]
    found = [(f, _tensor_span(buf, f[3], f[4], min_bytes)) for f in tensors]
    counts = Counter(name for _, (name, _, _) in found if name is not None)
    unique = {name for name, count in counts.items() if count == 1}
    dropped = {f[2]: (name, span, raw) for f, (name, span, raw) in found if name in unique and span}
    out = bytearray()
    for _, _, start, payload, stop in _fields(buf, begin, end):
        if start not in dropped:
            out += buf[start:stop]
            continue
        name, span, raw = dropped[start]
        tensor = bytearray()
        for field_start, field_stop in _other_fields(buf, payload, stop, raw):
            tensor += buf[field_start:field_stop]
        out += _key(_INITIALIZER, _LENGTH) + _varint(len(tensor)) + tensor
        spans[name] = span
    return out


def _tensor_span(buf, begin: int, end: int, min_bytes: int):
    """``(name, span, raw_data field starts)`` of one TensorProto; span None when its
    ``raw_data`` is not one field of ``min_bytes`` or more of a fixed-size type."""
    name, raws, data_type, dims = None, [], None, []
    for number, wire, start, payload, stop in _fields(buf, begin, end):
        if number == _NAME and wire == _LENGTH:
            name = bytes(buf[payload:stop]).decode("utf-8", "surrogateescape")
        elif number == _RAW_DATA and wire == _LENGTH:
            raws.append((start, payload, stop))
        elif number == _DATA_TYPE and wire == _VARINT:
            data_type = payload
        elif number == _DIMS:
            dims += _dims(buf, wire, payload, stop)
    itemsize = _itemsize(data_type)
    if len(raws) != 1 or itemsize is None:
        return name, None, set()
    start, payload, stop = raws[0]
    length = stop - payload
    if length < min_bytes or length != int(np.prod(dims, dtype=np.int64)) * itemsize:
        return name, None, set()
    return name, Span(payload, length), {start}


def _dims(buf, wire: int, payload: int, stop: int) -> list[int]:
    if wire == _VARINT:  # one value, unpacked
        return [payload]
    values, pos = [], payload  # packed
    while pos < stop:
        value, pos = _read_varint(buf, pos)
        values.append(value)
    return values


def _itemsize(data_type: int | None) -> int | None:
    """Bytes per value of a TensorProto data type stored one value per item, else None."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(data_type)
    except Exception:  # an unknown type, or None
        return None
    if data_type in _PACKED or dtype.kind not in "biuf":
        return None
    return dtype.itemsize


_PACKED = {
    getattr(onnx.TensorProto, name)
    for name in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")
    if hasattr(onnx.TensorProto, name)
}


def _other_fields(buf, begin: int, end: int, skipped: set[int]):
    for _, _, start, _, stop in _fields(buf, begin, end):
        if start not in skipped:
            yield start, stop


def _fields(buf, begin: int, end: int):
    """``(number, wire type, field start, payload start or varint value, field end)``."""
    pos = begin
    while pos < end:
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wire, start, value, pos
            continue
        if wire == _LENGTH:
            length, pos = _read_varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32):
            length = 8 if wire == _FIXED64 else 4
        else:
            raise WireError(f"wire type {wire} at byte {start}")
        if pos + length > end:
            raise WireError(f"field {number} at byte {start} runs past its message")
        yield number, wire, start, pos, pos + length
        pos += length


def _read_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise WireError(f"varint at byte {pos} runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)
