"""A graph's proto without the data of its large tensors, which travel beside it as arrays.

``io.to_proto`` copies every initializer into the ModelProto; protobuf frees that memory only
with the whole message. Handing a large graph from one stage to the next (pass graph ->
reimported torch module, the QAT graph kept on the module) that way held the weights once more
per stage. :func:`to_proto_detached` writes each large initializer as a placeholder (dims and
type, ``data_location: EXTERNAL`` at :data:`DETACHED`, no data) and returns the arrays
themselves, not copies; :func:`qdqforge.runtime.reimport` takes them (``tensors=``) and wraps
them as torch tensors sharing their memory. A placeholder reaching onnx or onnxruntime without
its arrays fails loudly there (an external file that does not exist), never silently.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx_graphsurgeon.ir.tensor import Constant, LazyValues

from qdqforge.graph import io
from qdqforge.graph.ir import Graph

DETACHED = "qdqforge-detached-tensor"  # the external "location" of a placeholder
MIN_BYTES = 2**20  # smaller tensors stay in the proto (shape inputs, scales, biases)


def to_proto_detached(
    graph: Graph, min_bytes: int = MIN_BYTES
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """``io.to_proto(graph)`` with every loaded initializer of ``min_bytes`` or more left out.

    Returns:
        The proto (placeholders for the large tensors) and ``{name: array}`` of those tensors,
        the graph's own arrays (shared, not copied).
    """
    detached = _large_constants(graph, min_bytes)
    saved = {name: const._values for name, const in detached.items()}
    try:
        for const in detached.values():
            const._values = LazyValues(placeholder(const.name, const._values))
        proto = io.to_proto(graph)
    finally:
        for name, const in detached.items():
            const._values = saved[name]
    return proto, saved


def _large_constants(graph: Graph, min_bytes: int) -> dict[str, Constant]:
    found = {}
    for tensor in graph.gs.tensors().values():
        values = tensor._values if isinstance(tensor, Constant) else None
        if isinstance(values, np.ndarray) and values.nbytes >= min_bytes and _as_stored(tensor):
            found[tensor.name] = tensor
    return found


def _as_stored(const: Constant) -> bool:
    """True when the proto would hold the array's own bytes (no export dtype conversion)."""
    return np.dtype(const.export_dtype) == const._values.dtype if const.export_dtype else True


def placeholder(name: str, array: np.ndarray) -> onnx.TensorProto:
    """A TensorProto with ``array``'s name, dims and type and no data (module docstring)."""
    tensor = onnx.TensorProto(name=name, dims=array.shape)
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=DETACHED)
    return tensor


def is_placeholder(tensor: onnx.TensorProto) -> bool:
    """True for a tensor :func:`to_proto_detached` left without data."""
    return any(e.key == "location" and e.value == DETACHED for e in tensor.external_data)


def materialize(graph: Graph) -> None:
    """Load every lazily imported tensor, so ``graph`` no longer holds the proto it came from.

    ``io.from_proto`` leaves initializers as references into their ModelProto; one reference
    keeps the whole message (every weight) alive.
    """
    for tensor in graph.gs.tensors().values():
        if isinstance(tensor, Constant) and isinstance(tensor._values, LazyValues):
            tensor.values  # noqa: B018 (the property loads and keeps the array)
