"""The export cache's graphs without the model's weights: initializers that are the model's tensors.

An exported graph's initializers are mostly the model's parameters and buffers under their torch
names, byte for byte. The cache key covers the bytes of every parameter and buffer
(:mod:`qdqforge.front.export.fingerprint`), so on a hit the model in hand holds exactly the bytes
the graph was exported with: the cache keeps those initializers as data-less stubs
(:func:`weightless`) and :func:`with_weights` fills them from the model's tensors. The cache
then holds the graph's structure and only the initializers the model does not hold (constants
the exporter made, a buffer a trace changed), not a second copy of the weights.

An initializer becomes a stub only if a tensor of the model has its name and exactly its bytes
when the graph is stored; so a filled graph is the stored graph, byte for byte (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from qdqforge.front.export.fingerprint_kinds import tensor_bytes
from qdqforge.graph.detached import without_initializers, without_raw_data

_SLICE = 1 << 24  # bytes compared at a time


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


def with_weights(stored: Weightless, model: nn.Module) -> onnx.ModelProto | None:
    """A new copy of the stored graph with its stubs filled from ``model``; None when ``model``
    lacks one of them or holds another size (not the model the graph was stored for)."""
    tensors = model_tensors(model)
    proto = onnx.ModelProto()
    proto.CopyFrom(stored.proto)
    for tensor in proto.graph.initializer:
        if tensor.name not in stored.from_model:
            continue
        source = tensors.get(tensor.name)
        if source is None or source.numel() != int(np.prod(tensor.dims, dtype=np.int64)):
            return None
        tensor.raw_data = tensor_bytes(source).tobytes()
    return proto


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
