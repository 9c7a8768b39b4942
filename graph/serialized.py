"""A graph's ONNX file bytes as pieces written one after another, never one message in memory.

``filled(proto, arrays).SerializeToString()`` (:mod:`qdqforge.graph.external`) first copies
every weight into the ModelProto (1x the weights) and then serializes it (1x more): saving a
0.6 GB model held 1.2 GB for a moment, and the QAT save of a > 2 GB model held both copies of
its 0.25x int8 QDQ and deploy models at its peak. :func:`pieces` returns the same bytes as a
list of small serialized parts and the arrays' own buffers, which :meth:`Serialized.write_to`
writes in turn.

How the parts make the message (protobuf wire format): a length-delimited field is
``tag, varint(length), payload``, and fields follow in ascending field number, as protobuf
serializes them. The model is its fields before ``graph`` (7), the graph, its fields after; the
graph is its fields before ``initializer`` (5), the initializers in order, the fields after; an
initializer held as an array (a placeholder of :func:`~qdqforge.graph.detached.to_proto_detached`)
is its fields before ``raw_data`` (9), the tag, the length and the array's bytes, the fields
after (its ``external_data`` and ``data_location`` dropped, as ``filled`` drops them). The
lengths are sums of the parts' lengths. Tested byte for byte against ``SerializeToString``.

The messages split here (the model, its graph, the placeholders) come from
``io.to_proto`` / ``detached.placeholder`` and carry no unknown fields, which splitting would
drop; every other message is serialized whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.graph.ir import Graph

_GRAPH, _INITIALIZER, _RAW_DATA = 7, 5, 9  # ModelProto.graph, GraphProto.initializer, raw_data
_EXTERNAL = {"external_data", "data_location"}  # a placeholder's marks, not in the file
_LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class Serialized:
    """The bytes of a model as parts (``bytes`` or a flat uint8 view of an array)."""

    parts: list[bytes | np.ndarray]

    def write_to(self, handle) -> None:
        """Write every part to the binary file ``handle``."""
        for part in self.parts:
            handle.write(part if isinstance(part, bytes) else memoryview(part))

    def tobytes(self) -> bytes:
        """All the bytes at once (for small models and tests)."""
        return b"".join(p if isinstance(p, bytes) else p.tobytes() for p in self.parts)


def graph_serialized(graph: Graph) -> Serialized | None:
    """``graph``'s file bytes as parts written in turn (no ModelProto holding the weights, no
    bytes object of the whole), or None when it needs external data
    (``io.needs_external_data``).

    One export of the graph: its size comes from the proto without its large tensors plus
    their arrays' bytes, and that proto, given the arrays, is the one written (exporting
    again and walking the full proto for its size cost 1.8 s per saved BERT-base model).
    """
    from qdqforge.graph import external, io  # graph.io imports this module

    proto, arrays, size = external.external_size(graph)
    if size > io.EXTERNAL_THRESHOLD:
        return None
    constants = graph.gs.tensors()
    if any(getattr(constants[name], "data_location", None) is not None for name in arrays):
        return Serialized([io.to_proto(graph).SerializeToString()])  # gs writes their location
    return pieces(proto, arrays)


def pieces(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> Serialized:
    """The bytes of ``external.filled(proto, arrays)``, as parts (module docstring).

    ``proto`` (placeholders for ``arrays``) is not modified; the arrays are not copied when
    C-contiguous.
    """
    from qdqforge.graph.detached import is_placeholder  # graph.io imports this module

    entries: list[bytes | np.ndarray] = []
    for tensor in proto.graph.initializer:
        tensor_parts = _tensor_parts(tensor, arrays) if is_placeholder(tensor) else None
        tensor_parts = tensor_parts or [tensor.SerializeToString()]
        entries += [_header(_INITIALIZER, _length(tensor_parts)), *tensor_parts]
    graph_parts = _around(proto.graph, _INITIALIZER, entries)
    model_parts = _around(proto, _GRAPH, [_header(_GRAPH, _length(graph_parts)), *graph_parts])
    return Serialized(_joined(model_parts))


def _tensor_parts(tensor: onnx.TensorProto, arrays: dict) -> list[bytes | np.ndarray]:
    """A placeholder's parts: its fields around ``raw_data``, which is its array's bytes."""
    data = np.ascontiguousarray(arrays[tensor.name]).reshape(-1).view(np.uint8)
    before, after = _split(tensor, _RAW_DATA, skip=_EXTERNAL)
    return [before, _header(_RAW_DATA, data.nbytes), data, after]


def _around(message, number: int, middle: list) -> list:
    """``message``'s fields before field ``number``, ``middle``, its fields after."""
    before, after = _split(message, number)
    return [before, *middle, after]


def _split(message, number: int, skip: frozenset | set = frozenset()) -> tuple[bytes, bytes]:
    """``message``'s fields numbered below and above ``number``, each serialized."""
    from qdqforge.graph.detached import set_field  # graph.io imports this module

    below, above = type(message)(), type(message)()
    for field, value in message.ListFields():
        if field.number != number and field.name not in skip:
            set_field(below if field.number < number else above, field, value)
    return below.SerializeToString(), above.SerializeToString()


def _header(number: int, length: int) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(length)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length(parts: list) -> int:
    return sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)


def _joined(parts: list) -> list:
    """Neighbouring ``bytes`` parts as one (fewer, larger writes)."""
    joined: list = []
    for part in parts:
        if not isinstance(part, bytes):
            joined.append(part)
        elif joined and isinstance(joined[-1], bytearray):
            joined[-1] += part
        else:
            joined.append(bytearray(part))
    return [bytes(p) if isinstance(p, bytearray) else p for p in joined if len(p)]
