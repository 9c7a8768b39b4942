"""A model's large initializers held once as arrays, while data-less copies of it are run.

The save-time check runs each saved model a dozen times, each time a new proto: exposed
outputs, forced inputs, onnxruntime's optimized graph. Every one of those protos used to carry
every weight (a ``CopyFrom`` of the whole message), and every session copied them again
(serialized bytes, or the arrays ``numerics.session`` cut out of the proto): on a 0.60 GB MLP
the save took 86 s and 10x the weights, 22 s of it copying protos and tensors.

:func:`hold` cuts a model's large initializers out once: its ``model`` has a data-less
placeholder for each (``data_location: EXTERNAL``, location :data:`HELD` + a token), and
``arrays`` their data. Copies of ``model`` are cheap and keep the placeholders;
``numerics.session`` finds the arrays by the token and hands them to onnxruntime, which reads
them in place; :func:`array_of` reads one initializer whichever way it is stored. The arrays
live as long as the :class:`Held` object: the caller keeps it while it runs the model's
copies. A placeholder whose arrays were let go fails loudly (a GraphError naming it).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from qdqforge.errors import GraphError
from qdqforge.graph import wire
from qdqforge.graph.detached import in_memory_initializers
from qdqforge.graph.external import external_arrays, same_bits
from qdqforge.graph.mapped import map_file, mapped_array, release
from qdqforge.graph.numerics import IN_MEMORY_BYTES

log = logging.getLogger(__name__)

HELD = "qdqforge-held:"  # the external "location" of a held placeholder, before its token

_LIVE: weakref.WeakValueDictionary[str, Held] = weakref.WeakValueDictionary()


@dataclass(eq=False)
class Held:
    """``model`` with placeholders for ``arrays`` (module docstring)."""

    model: onnx.ModelProto
    arrays: dict[str, np.ndarray]
    token: str  # in each placeholder's location, after HELD

    def __post_init__(self) -> None:
        _LIVE[self.token] = self


def hold(proto: onnx.ModelProto, min_bytes: int = IN_MEMORY_BYTES) -> Held:
    """``proto``'s initializers of ``min_bytes`` or more as arrays beside a data-less copy;
    ``proto`` is not modified (drop it afterwards: the arrays are copies of its data)."""
    token = uuid.uuid4().hex
    skeleton, arrays = in_memory_initializers(proto, min_bytes, location=HELD + token)
    return Held(skeleton, arrays, token)


def hold_file(
    path: str | os.PathLike,
    min_bytes: int = IN_MEMORY_BYTES,
    known: dict[str, np.ndarray] | None = None,
) -> Held:
    """The ONNX file at ``path`` held as :func:`hold` holds a proto; its tensors in external
    data (``<name>.data``, a model over 2 GB) held as read-only maps of that file
    (:mod:`qdqforge.graph.mapped`), read page by page as a run touches them, not copied. Its
    large inline tensors are found in the mapped file's bytes (:mod:`qdqforge.graph.wire`), so
    the file is never parsed with them: each is a read-only view of the map where its offset
    is a multiple of its item size (int8 always), else its own aligned copy. A file that walk
    cannot read is parsed whole, as before.

    ``known``: arrays the caller holds anyway (the graph the file was written from), by
    initializer name. A tensor in the file whose bytes equal, bit for bit, those of the known
    array of its name, dtype and shape is held as that array: what runs is still what the file
    holds, without a second copy of it.

    Raises:
        GraphError: the file or its external data cannot be read.
    """
    known = known or {}
    proto, inline = _read_split(Path(path), min_bytes, known)
    mapped = {**external_arrays(proto, Path(path).parent, mapped=True), **inline}
    held = hold(proto, min_bytes)  # leaves the tensors in external data as they are
    proto = None
    _placeholders(held.model, mapped, held.token)
    held.arrays.update(mapped)
    for name, array in known.items():
        if name not in mapped and same_bits(held.arrays.get(name), array):
            held.arrays[name] = array
    return held


def _read_split(path: Path, min_bytes: int, known: dict[str, np.ndarray]):
    """``(model, {name: array})``: the file's large inline initializers found in its mapped
    bytes (:mod:`qdqforge.graph.wire`) and left out of the parsed model, each the known array
    it equals, a read-only view of the map where aligned, else its own copy; the whole file
    parsed (every weight copied) where the walk cannot read it."""
    try:
        mapping = map_file(path) if sys.byteorder == "little" else None
        if mapping is not None:
            skeleton, spans = wire.split_weights(mapping, min_bytes)
            return skeleton, _inline_arrays(mapping, skeleton, spans, known)
    except (wire.WireError, OSError) as e:  # not mappable or not walkable: read as before
        log.debug("%s read whole: %s", path, e)
    try:
        return onnx.load(os.fspath(path), load_external_data=False), {}
    except Exception as e:
        raise GraphError(f"cannot read ONNX file {os.fspath(path)!r}: {e}") from e


def _inline_arrays(mapping, skeleton: onnx.ModelProto, spans: dict, known: dict) -> dict:
    tensors = {t.name: t for t in skeleton.graph.initializer if t.name in spans}
    arrays = {}
    for name, span in spans.items():
        tensor = tensors[name]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        shape = tuple(tensor.dims)
        region = np.frombuffer(mapping, np.uint8, span.length, span.offset)
        read = region.view(dtype).reshape(shape)  # numpy reads a misaligned view too
        same = known.get(name)
        if same is None or not same_bits(read, same):
            view = mapped_array(mapping, dtype, span.length // dtype.itemsize, span.offset)
            same = view.reshape(shape) if view is not None else np.array(read, copy=True)
        arrays[name] = same
        release(region)  # the pages the comparison or copy read
    return arrays


def held_model(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> Held:
    """``proto`` with each initializer named in ``arrays`` turned into a held placeholder of
    that array (``proto`` is changed in place; the arrays are held as they are, not copied).
    ``io.from_proto`` gives the graph's constants these arrays."""
    token = uuid.uuid4().hex
    _placeholders(proto, arrays, token)
    return Held(proto, arrays, token)


def _placeholders(proto: onnx.ModelProto, names, token: str) -> None:
    """Each initializer of ``proto`` named in ``names`` as a placeholder of ``token``."""
    for tensor in proto.graph.initializer:
        if tensor.name in names:  # its other fields (name, dims, type, doc) stay
            tensor.ClearField("raw_data")
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            tensor.external_data.add(key="location", value=HELD + token)


def filled(held: Held) -> onnx.ModelProto:
    """A copy of ``held.model`` whose held placeholders hold their arrays' bytes: the model as
    one message, as it was before :func:`held_model` (tested byte for byte)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(held.model)
    for tensor in proto.graph.initializer:
        if _token(tensor) == held.token:
            tensor.ClearField("external_data")
            tensor.ClearField("data_location")
            tensor.raw_data = np.ascontiguousarray(held.arrays[tensor.name]).tobytes()
    return proto


def held_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """``{name: array}`` of every held placeholder among ``model``'s initializers.

    Raises:
        GraphError: a placeholder whose :class:`Held` was let go.
    """
    tokens = ((tensor, _token(tensor)) for tensor in model.graph.initializer)
    return {t.name: _held_array(t, token) for t, token in tokens if token is not None}


def array_of(tensor: onnx.TensorProto) -> np.ndarray:
    """The value of an initializer, held or stored in the proto."""
    token = _token(tensor)
    return numpy_helper.to_array(tensor) if token is None else _held_array(tensor, token)


def is_held(tensor: onnx.TensorProto) -> bool:
    """True for a held placeholder (its data is an array beside the proto)."""
    return _token(tensor) is not None


def _held_array(tensor: onnx.TensorProto, token: str) -> np.ndarray:
    held = _LIVE.get(token)
    if held is None or tensor.name not in held.arrays:
        raise GraphError(
            f"initializer '{tensor.name}' is held outside the model and its arrays were "
            "released before the model was run"
        )
    return held.arrays[tensor.name]


def _token(tensor: onnx.TensorProto) -> str | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for entry in tensor.external_data:
        if entry.key == "location" and entry.value.startswith(HELD):
            return entry.value.removeprefix(HELD)
    return None
