"""A graph's proto without the data of its large tensors, which travel beside it as arrays.

``io.to_proto`` copies every initializer into the ModelProto; protobuf frees that memory only
with the whole message. Handing a large graph from one stage to the next (pass graph ->
reimported torch module, the QAT graph kept on the module) that way held the weights once more
per stage. :func:`to_proto_detached` writes each large initializer as a placeholder (dims and
type, ``data_location: EXTERNAL`` at :data:`DETACHED`, no data) and returns the arrays
themselves, not copies; :func:`qdqforge.runtime.reimport` takes them (``tensors=``) and wraps
them as torch tensors sharing their memory. A placeholder reaching onnx or onnxruntime without
its arrays fails loudly there (an external file that does not exist), never silently.

Also here: :func:`weights_as_inputs` (onnxruntime reads large weights from fed arrays, in place),
:func:`in_memory_initializers` (a session's proto without its large tensors' data, which
onnxruntime reads from arrays instead: ``numerics.session``),
:func:`graph_with_arrays` / :func:`materialize` (a graph that no longer holds its proto) and
:func:`reap_dropped` (dropped graphs and modules, reference cycles, freed before a large stage).
"""

from __future__ import annotations

import gc
import logging

import numpy as np
import onnx
from onnx_graphsurgeon.ir.tensor import Constant, LazyValues

from qdqforge.graph import io
from qdqforge.graph.ir import Graph

log = logging.getLogger(__name__)

DETACHED = "qdqforge-detached-tensor"  # the external "location" of a placeholder
MIN_BYTES = 2**20  # smaller tensors stay in the proto (shape inputs, scales, biases)
_PACKED = {
    getattr(onnx.TensorProto, name)
    for name in ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")
    if hasattr(onnx.TensorProto, name)
}
REAP_BYTES = 64 * 2**20  # below this, a dropped graph is left to the collector's own pace


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


def placeholder(name: str, array: np.ndarray, location: str = DETACHED) -> onnx.TensorProto:
    """A TensorProto with ``array``'s name, dims and type and no data (module docstring)."""
    tensor = onnx.TensorProto(name=name, dims=array.shape)
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def weights_as_inputs(proto: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """A copy of ``proto`` in which the initializers ``names`` are graph inputs (without data).

    Only the other initializers and the graph's structure are copied, never the data of
    ``names``: onnxruntime then reads those tensors from the arrays fed at run time, in place
    (a session built from the full proto holds the serialized bytes, its parse and its own
    tensors: 3x the weights while it runs).
    """
    graph, skeleton = proto.graph, without_initializers(proto)
    declared = {i.name for i in graph.input}  # an initializer may be a graph input already
    for tensor in graph.initializer:
        if tensor.name in names and tensor.name not in declared:
            value_type = onnx.helper.make_tensor_type_proto(tensor.data_type, tensor.dims)
            skeleton.graph.input.add(name=tensor.name).type.CopyFrom(value_type)
        elif tensor.name not in names:
            skeleton.graph.initializer.add().CopyFrom(tensor)
    return skeleton


def in_memory_initializers(
    proto: onnx.ModelProto, min_bytes: int, location: str = DETACHED
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """``proto`` with each initializer of ``min_bytes`` or more as a data-less placeholder, and
    those tensors' data as arrays (a copy of their bytes: protobuf gives no view).

    onnxruntime takes the arrays as the placeholders' data (``add_external_initializers``):
    a session skips serializing and parsing them, and reads them in place. ``proto`` is not
    modified; a tensor already stored outside it (external data) is left as it is.
    ``location``: the placeholders' external location (``held_arrays`` names its own).
    """
    graph, skeleton = proto.graph, without_initializers(proto)
    arrays = {}
    for tensor in graph.initializer:
        if _raw_bytes(tensor) >= min_bytes:  # from dims: reading raw_data copies it
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
            array = np.frombuffer(tensor.raw_data, dtype).reshape(tuple(tensor.dims))
            skeleton.graph.initializer.append(placeholder(tensor.name, array, location))
            arrays[tensor.name] = array
        else:
            skeleton.graph.initializer.add().CopyFrom(tensor)
    return skeleton, arrays


def _raw_bytes(tensor: onnx.TensorProto) -> int:
    """Bytes of ``tensor``'s ``raw_data`` (0 when its data lies elsewhere), from its dims."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL or not tensor.HasField("raw_data"):
        return 0
    if tensor.data_type in _PACKED or tensor.data_type == onnx.TensorProto.STRING:
        return 0  # sub-byte types pack two values a byte: left in the proto
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def without_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` with every field but the graph's initializers."""
    skeleton = onnx.ModelProto()
    copy_fields(proto, skeleton, skip={"graph"})
    copy_fields(proto.graph, skeleton.graph, skip={"initializer"})
    return skeleton


def without_raw_data(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """A copy of ``tensor`` with every field but ``raw_data`` (its bytes are never copied)."""
    stub = onnx.TensorProto()
    for field in tensor.DESCRIPTOR.fields:  # not ListFields: it would copy raw_data out
        if field.name == "raw_data":
            continue
        value = getattr(tensor, field.name)
        if field.is_repeated:
            getattr(stub, field.name).extend(value)
        elif tensor.HasField(field.name):
            if field.type == field.TYPE_MESSAGE:
                getattr(stub, field.name).CopyFrom(value)
            else:
                setattr(stub, field.name, value)
    return stub


def copy_fields(source, target, skip: set[str]) -> None:
    for field, value in source.ListFields():
        if field.name not in skip:
            set_field(target, field, value)


def set_field(target, field, value) -> None:
    """Give protobuf message ``target`` the ``value`` of ``field`` (from ``ListFields``)."""
    if field.is_repeated:
        getattr(target, field.name).extend(value)
    elif field.type == field.TYPE_MESSAGE:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)


def is_placeholder(tensor: onnx.TensorProto) -> bool:
    """True for a tensor :func:`to_proto_detached` left without data."""
    return any(e.key == "location" and e.value == DETACHED for e in tensor.external_data)


def graph_with_arrays(proto: onnx.ModelProto) -> Graph:
    """The graph of ``proto`` holding every tensor in its own array (:func:`materialize`):
    once the caller drops ``proto``, the graph holds the weights once."""
    graph = io.from_proto(proto)
    materialize(graph)
    return graph


def keep_producer(source: Graph, target: Graph) -> None:
    """``source``'s ``producer_name``/``producer_version`` on ``target``: gs's Graph.copy (made
    by a recipe run on a Graph, not on a proto) drops them; the flows' files keep the
    exporter's."""
    target.gs.producer_name = source.gs.producer_name
    target.gs.producer_version = source.gs.producer_version


def materialize(graph: Graph) -> None:
    """Load every lazily imported tensor, so ``graph`` no longer holds the proto it came from.

    ``io.from_proto`` leaves initializers as references into their ModelProto; one reference
    keeps the whole message (every weight) alive. So does gs's ``import_domains``: it is the
    proto's own ``opset_import`` container (a sub-message keeps its root alive), replaced here by
    copies. Measured on the wide MLP: the exported proto had outlived ``del`` by this one
    reference, 1x the weights beside the pass graph until the graph itself was dropped.
    """
    for tensor in graph.gs.tensors().values():
        if isinstance(tensor, Constant) and isinstance(tensor._values, LazyValues):
            tensor.values  # noqa: B018 (the property loads and keeps the array)
    domains = graph.gs.import_domains
    if domains is not None:  # None means "opset only" to gs: kept as it is
        graph.gs.import_domains = [onnx.helper.make_opsetid(o.domain, o.version) for o in domains]


def release_orphan(const: Constant) -> None:
    """Drop the array of a constant no node reads any more (a pass just replaced it).

    A gs tensor is a reference cycle (its ``outputs`` list refers back to it), so a replaced
    constant and its array live until the cyclic collector runs, which large arrays never
    trigger and which the pass manager pauses: ARQ's float weights stayed beside the quantized
    ones until the end of the pipeline. A graph copy that shares the array keeps it.
    """
    if not const.outputs:
        const.values = np.empty((0,), dtype=const.dtype)


def constant_bytes(graph: Graph) -> int:
    """Bytes of the arrays ``graph``'s loaded constants hold."""
    tensors = graph.gs.tensors().values()
    return sum(t._values.nbytes for t in tensors if isinstance(t, Constant) and _loaded(t))


def large_constants(graph: Graph, min_bytes: int) -> dict[str, np.ndarray]:
    """``{name: array}`` of ``graph``'s loaded constants of ``min_bytes`` or more."""
    tensors = graph.gs.tensors().items()
    return {
        name: t._values
        for name, t in tensors
        if isinstance(t, Constant) and _loaded(t) and t._values.nbytes >= min_bytes
    }


def _loaded(const: Constant) -> bool:
    return isinstance(const._values, np.ndarray)


def reap_dropped(weight_bytes: int) -> None:
    """Free the graphs and modules dropped so far when a stage of ``weight_bytes`` comes next.

    A gs graph (nodes <-> tensors) and a torch.fx module (graph <-> owning module) are
    reference cycles: dropped, they keep their arrays (and a proto their lazy tensors refer
    to) until Python's cyclic collector runs, and allocating large arrays never triggers it.
    On the wide MLP of ``bench/large_flow.py`` a dropped pass graph or calibration module kept
    1x the weights until the next stage had allocated its own. A full collection costs ~0.1 s
    with torch loaded, so it runs only before stages of :data:`REAP_BYTES` or more.
    """
    if weight_bytes >= REAP_BYTES:
        found = gc.collect()
        log.debug("collected %d unreachable objects before a %d-byte stage", found, weight_bytes)
