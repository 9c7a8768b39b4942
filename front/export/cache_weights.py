"""The export cache's graphs without the model's weights: initializers that are the model's tensors.

An exported graph's initializers are mostly the model's parameters and buffers under their torch
names, byte for byte. The cache key covers the bytes of every parameter and buffer
(:mod:`qdqforge.front.export.fingerprint`), so on a hit the model in hand holds exactly the bytes
the graph was exported with: the cache keeps those initializers as data-less stubs
(:func:`weightless`) and :func:`held_weights` gives them the model's tensors again: the large
ones as arrays held beside the proto (copies, which the flow's graph then owns), the small
ones as bytes in it. The cache holds the graph's structure and only the initializers the model
does not hold (constants the exporter made, a buffer a trace changed), not a second copy of
the weights.

An initializer becomes a stub only if a tensor of the model has its name and exactly its bytes
when the graph is stored; so a hit, filled (``held_arrays.filled``), is the stored graph, byte
for byte (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from qdqforge.front.export.fingerprint_kinds import tensor_bytes
from qdqforge.graph.detached import without_initializers, without_raw_data
from qdqforge.graph.held_arrays import Held, held_model

_SLICE = 1 << 24  # bytes compared at a time
HELD_BYTES = 2**20  # smaller stubs are filled into the proto
_HELD_TYPES = {
    getattr(onnx.TensorProto, name): np.dtype(kind)
    for name, kind in (("FLOAT", "<f4"), ("DOUBLE", "<f8"), ("FLOAT16", "<f2"), ("INT8", "i1"),
                       ("UINT8", "u1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"),
                       ("BOOL", "?"))
}  # fmt: skip


@dataclass(frozen=True)
class Weightless:
    """A graph whose initializers ``from_model`` are stubs to fill from the model's tensors."""

    proto: onnx.ModelProto
    from_model: frozenset[str]


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by its qualified name (tied ones under each)."""
    named = dict(model.named_buffers(remove_duplicate=False))
    named.update(model.named_parameters(remove_duplicate=False))
    return named


def weightless(proto: onnx.ModelProto, model: nn.Module) -> Weightless:
    """``proto`` with each initializer that is byte for byte a tensor of ``model`` as a stub."""
    tensors, stubs = model_tensors(model), set()
    skeleton = without_initializers(proto)
    for tensor in proto.graph.initializer:
        source = tensors.get(tensor.name)
        if source is not None and _same_bytes(tensor, source):
            skeleton.graph.initializer.append(without_raw_data(tensor))
            stubs.add(tensor.name)
        else:
            skeleton.graph.initializer.add().CopyFrom(tensor)
    return Weightless(skeleton, frozenset(stubs))


def held_weights(stored: Weightless, model: nn.Module) -> Held | None:
    """A new copy of the stored graph with its stubs given ``model``'s tensors: each of
    :data:`HELD_BYTES` or more of a plain numpy type as a held placeholder
    (:mod:`qdqforge.graph.held_arrays`) of a copy of the tensor, the others filled with its
    bytes. No ModelProto holds the large weights: the graph imported from ``held.model`` takes
    the copies themselves (one copy of the weights, where filling the proto and loading arrays
    from it made two); ``held_arrays.filled`` gives the one-message model. None when ``model``
    lacks a stubbed tensor or holds another size (not the model the graph was stored for)."""
    tensors = model_tensors(model)
    proto = onnx.ModelProto()
    proto.CopyFrom(stored.proto)
    arrays = {}
    for tensor in proto.graph.initializer:
        if tensor.name not in stored.from_model:
            continue
        source = tensors.get(tensor.name)
        if source is None or source.numel() != int(np.prod(tensor.dims, dtype=np.int64)):
            return None
        dtype = _held_dtype(tensor)
        if dtype is None:
            tensor.raw_data = tensor_bytes(source).tobytes()
        else:  # the values numpy_helper.to_array reads from those bytes (little-endian)
            values = np.frombuffer(tensor_bytes(source), dtype).reshape(tuple(tensor.dims))
            arrays[tensor.name] = values.copy()
    return held_model(proto, arrays)


def _held_dtype(tensor: onnx.TensorProto) -> np.dtype | None:
    """The array type of a stub worth holding (large, a plain numpy type), else None."""
    dtype = _HELD_TYPES.get(tensor.data_type)
    if dtype is None or _declared_bytes(tensor) < HELD_BYTES:
        return None
    return dtype


def _same_bytes(tensor: onnx.TensorProto, source: torch.Tensor) -> bool:
    if not tensor.HasField("raw_data") or tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    if source.numel() * source.element_size() != _declared_bytes(tensor):
        return False  # from dims and type: reading raw_data copies it
    raw = np.frombuffer(tensor.raw_data, np.uint8)  # protobuf gives a copy, not a view
    held = np.frombuffer(tensor_bytes(source), np.uint8)
    return all(  # in slices: one comparison of the whole would make a bool per byte at once
        np.array_equal(raw[start : start + _SLICE], held[start : start + _SLICE])
        for start in range(0, raw.size, _SLICE)
    )


def _declared_bytes(tensor: onnx.TensorProto) -> int:
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return -1
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
