"""Models over protobuf's 2 GB limit: write and read their tensors one by one.

Writing: ``onnx.save_model(save_as_external_data=True)`` needs the whole ModelProto (every
weight copied into it) and copies it once more; :func:`save_graph_external` writes a graph's
tensors from its own arrays straight into ``<name>.data`` and then the small proto that points
at them. The files are the ones onnx writes (same tensor order, offsets and ``external_data``
entries: every initializer with ``raw_data`` of at least :data:`SIZE_THRESHOLD` bytes,
``sys.getsizeof`` as onnx measures it, back to back, no alignment).

Reading: :func:`load_graph` reads the proto without its external data and each
tensor from the data file into its own array, so the graph holds the weights once and no proto
holds them at all; or, ``mapped``, as read-only views of the data file
(:mod:`qdqforge.graph.mapped`), so a reader holds only the pages it is reading.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import _get_initializer_tensors, uses_external_data

from qdqforge.errors import GraphError
from qdqforge.graph import detached
from qdqforge.graph.ir import Graph
from qdqforge.graph.mapped import map_file, mapped_array, release

COMPARE_BYTES = 1 << 24  # same_bits compares this many bytes at a time
SIZE_THRESHOLD = 1024  # onnx.save_model's size_threshold, as graph.io has always used it
_BYTES_OVERHEAD = sys.getsizeof(b"")  # sys.getsizeof(raw_data) = len + this


def external_size(graph: Graph) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """The detached proto of ``graph``, its arrays and the serialized size of the full model
    (the proto's size plus the arrays' bytes; a placeholder's marks stand in for the few
    bytes of a ``raw_data`` header)."""
    proto, arrays = detached.to_proto_detached(graph, SIZE_THRESHOLD - _BYTES_OVERHEAD)
    return proto, arrays, proto.ByteSize() + sum(a.nbytes for a in arrays.values())


def filled(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``proto`` from :func:`external_size` with each placeholder given its array's bytes (in
    place): the proto ``io.to_proto`` makes of the graph, byte for byte, without exporting the
    graph a second time."""
    for tensor in _get_initializer_tensors(proto):
        if detached.is_placeholder(tensor):
            tensor.ClearField("external_data")
            tensor.ClearField("data_location")
            tensor.raw_data = np.ascontiguousarray(arrays[tensor.name]).tobytes()
    return proto


def save_graph_external(
    proto: onnx.ModelProto, arrays: dict[str, np.ndarray], staged: Path
) -> Path:
    """Write ``proto`` (from :func:`external_size`) to ``staged`` and its tensors to
    ``<staged>.data``, one at a time; both fsync'd. Returns the data file's path."""
    data = staged.parent / (staged.name + ".data")
    with open(data, "wb") as handle:
        for tensor in _get_initializer_tensors(proto):
            if detached.is_placeholder(tensor):
                array = arrays[tensor.name]
                _write(handle, tensor, memoryview(np.ascontiguousarray(array)))
                release(array)  # a mapped array's pages (graph.mapped)
            elif tensor.HasField("raw_data") and sys.getsizeof(tensor.raw_data) >= SIZE_THRESHOLD:
                _write(handle, tensor, tensor.raw_data)
                tensor.ClearField("raw_data")
        handle.flush()
        os.fsync(handle.fileno())
    with open(staged, "wb") as handle:
        handle.write(proto.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
    return data


def _write(handle, tensor: onnx.TensorProto, payload) -> None:
    offset = handle.tell()
    handle.write(payload.cast("B") if isinstance(payload, memoryview) else payload)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", _location(handle)), ("offset", offset)):
        tensor.external_data.add(key=key, value=str(value))
    tensor.external_data.add(key="length", value=str(handle.tell() - offset))


def _location(handle) -> str:
    return os.path.basename(handle.name)


def load_graph(path: str | os.PathLike, *, mapped: bool = False) -> Graph:
    """The graph of ``path``, its external tensors (if any) read one by one into arrays
    (``mapped``: read-only views of the data file, module docstring).

    Raises:
        GraphError: the file or a data file cannot be read or is too short.
    """
    from qdqforge.graph import io

    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as e:
        raise GraphError(f"cannot read ONNX file {os.fspath(path)!r}: {e}") from e
    arrays = external_arrays(proto, Path(path).parent, mapped=mapped)
    if not arrays:
        # weights inside the proto: the large ones copied out at once and the message let go.
        # Imported as they were, each constant kept the whole parsed message alive until the
        # last one was read: a 0.60 GB save held its weights twice.
        from qdqforge.graph.held_arrays import hold

        held, proto = hold(proto), None
        return io.from_proto(held.model)
    for tensor in _get_initializer_tensors(proto):  # placeholders: the graph takes the arrays
        if tensor.name in arrays:
            tensor.CopyFrom(detached.placeholder(tensor.name, arrays[tensor.name]))
    graph = io.from_proto(proto)
    for name, tensor in graph.gs.tensors().items():
        if name in arrays:
            tensor.values = arrays[name]
            tensor.data_location = onnx.TensorProto.DEFAULT  # as onnx.load leaves it
    return graph


def external_arrays(
    proto: onnx.ModelProto,
    folder: Path,
    *,
    mapped: bool = False,
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """``{name: array}`` of every initializer of ``proto`` (read without its external data)
    stored in a data file in ``folder``, each read into its own array (``mapped``: a read-only
    view of its data file where it is aligned, :mod:`qdqforge.graph.mapped`). ``known``:
    arrays the caller holds anyway, by name: a tensor read equal to its known array
    (:func:`same_bits`) is that array, its read copy let go before the next is read.

    Raises:
        GraphError: a data file cannot be read or is too short, or a location leaves ``folder``.
    """
    external = [t for t in _get_initializer_tensors(proto) if uses_external_data(t)]
    maps, known = ({} if mapped else None), known or {}
    return {t.name: _known_or(known.get(t.name), _read(folder, t, maps)) for t in external}


def same_bits(read: np.ndarray | None, known: np.ndarray) -> bool:
    """``read`` and ``known`` have the same dtype, shape and bytes (NaN payloads and signed
    zeros included). Compared :data:`COMPARE_BYTES` at a time, stopping at the first block that
    differs: no temporary of the tensor's size, and the pages of a block read from a map
    (``graph.mapped``) handed back before the next is read."""
    if read is None or read.dtype != known.dtype or read.shape != known.shape:
        return False
    if read.dtype.hasobject:
        return False
    a = np.ascontiguousarray(read).reshape(-1).view(np.uint8)  # copies only a strided view
    b = np.ascontiguousarray(known).reshape(-1).view(np.uint8)
    try:
        for start in range(0, a.size, COMPARE_BYTES):
            block = slice(start, start + COMPARE_BYTES)
            equal = np.array_equal(a[block], b[block])
            release(a[block])
            release(b[block])
            if not equal:
                return False
        return True
    finally:  # and whatever the kernel mapped around the pages read (fault-around)
        release(a)
        release(b)


def _known_or(known: np.ndarray | None, read: np.ndarray) -> np.ndarray:
    if known is None:
        return read
    same = same_bits(read, known)
    release(known)  # a mapped one (> 2 GB) hands back the pages the comparison read
    return known if same else read


def _read(folder: Path, tensor: onnx.TensorProto, maps: dict | None) -> np.ndarray:
    info = {e.key: e.value for e in tensor.external_data}
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    count = int(np.prod(tensor.dims, dtype=np.int64))
    location = info.get("location", "")
    if location in ("", ".", "..") or os.path.basename(location) != location:
        raise GraphError(f"tensor {tensor.name!r}: external data location {location!r} is not a "
                         f"file name beside the model in {folder}")  # fmt: skip
    file, offset = folder / location, int(info.get("offset", 0))
    try:
        view = _mapped_view(maps, file, dtype, count, offset) if maps is not None else None
        array = view if view is not None else np.fromfile(file, dtype, count, offset=offset)
    except (OSError, ValueError) as e:
        raise GraphError(f"cannot read tensor {tensor.name!r} from {file}: {e}") from e
    if array.size != count:
        raise GraphError(f"{file} ends before tensor {tensor.name!r} ({array.size} of {count})")
    return array.reshape(tuple(tensor.dims))


def _mapped_view(maps: dict, file: Path, dtype: np.dtype, count: int, offset: int):
    """The tensor as a view of ``file``'s map (made once per file), or None (read it instead)."""
    if file not in maps:
        maps[file] = map_file(file)
    return None if maps[file] is None else mapped_array(maps[file], dtype, count, offset)
