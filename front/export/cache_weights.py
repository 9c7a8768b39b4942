"""The export cache's graphs without the model's weights: initializers that are the model's tensors.

An exported graph's initializers are mostly the model's parameters and buffers under their torch
names, byte for byte. The cache key covers the bytes of every parameter and buffer
(:mod:`qdqforge.front.export.fingerprint`), so on a hit the model in hand holds exactly the bytes
the graph was exported with: the cache keeps those initializers as data-less stubs
(:func:`weightless`) and :func:`held_weights` gives them the model's tensors again: the large
ones as arrays held beside the proto, the small ones as bytes in it. The cache holds the graph's
structure and only the initializers the model does not hold (constants the exporter made, a
buffer a trace changed), not a second copy of the weights.

The large ones are read-only views of the model's own memory, not copies: the flow's graph
holds no second copy of the weights (on the 2.3 GB model of ``bench/large_flow.py`` a copy was
1x the weights beside the user's model through ``quantize_model``). Passes replace a constant's
array and never write into it; a write into a view raises (numpy's read-only flag), so a pass
that tried would fail loudly instead of changing the user's model. What outlives the API call
takes its own copy: the reimported module (``runtime.store.shared_tensor`` copies a read-only
array) and AdaRound's float weights. Every flow exports (or finds in the cache) its graph
through here, so a miss holds views as a hit does (``to_onnx.export_held``).

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

from qdqforge.errors import ExportError
from qdqforge.front.export.fingerprint_kinds import tensor_bytes
from qdqforge.front.export.parameter_stubs import is_parameter_stub
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
        if is_parameter_stub(tensor):  # the parameter itself, by identity (no bytes to compare)
            skeleton.graph.initializer.append(_from_parameter_stub(tensor, source))
            stubs.add(tensor.name)
        elif source is not None and _same_bytes(tensor, source):
            skeleton.graph.initializer.append(without_raw_data(tensor))
            stubs.add(tensor.name)
        else:
            skeleton.graph.initializer.add().CopyFrom(tensor)
    return Weightless(skeleton, frozenset(stubs))


def _from_parameter_stub(tensor: onnx.TensorProto, source: torch.Tensor | None):
    """The stub of an initializer exported without its data (:mod:`.parameter_stubs`)."""
    if source is None or source.numel() * source.element_size() != _declared_bytes(tensor):
        raise ExportError(
            f"initializer '{tensor.name}' was exported as the model's parameter of that name, "
            "but the model holds no such tensor of its size"
        )
    stub = onnx.TensorProto()
    stub.CopyFrom(tensor)  # no data to copy
    stub.ClearField("data_location")
    stub.ClearField("external_data")
    return stub


def held_weights(stored: Weightless, model: nn.Module) -> Held | None:
    """A new copy of the stored graph with its stubs given ``model``'s tensors: each of
    :data:`HELD_BYTES` or more of a plain numpy type as a held placeholder
    (:mod:`qdqforge.graph.held_arrays`) of a read-only view of the tensor (module docstring),
    the others filled with its bytes. No ModelProto holds the large weights: the graph imported
    from ``held.model`` takes the views themselves; ``held_arrays.filled`` gives the
    one-message model. None when ``model`` lacks a stubbed tensor or holds another size (not
    the model the graph was stored for). Keep ``model``'s tensors unchanged while the graph is
    used."""
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
            values.flags.writeable = False
            arrays[tensor.name] = values
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
