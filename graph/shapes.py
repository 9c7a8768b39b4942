"""Static shapes and dtypes from ``onnx.shape_inference`` (never fatal: unknown means None)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import onnx

from qdqforge.graph.qdqforge_ops import DOMAIN, SCHEMAS

logger = logging.getLogger(__name__)

SMALL = 4096  # initializers up to this many elements keep their data during inference
# qdqforge's calibration observers, ActQuant and QAT fake-quant nodes return a tensor of input
# 0's shape and type as output 0 (their other outputs are scales); ONNX inference cannot see
# through an unknown op, so every shape after one (e.g. a Pad's rank, a LayerNorm's dims) would
# be lost.
IDENTITY_OPS = {(DOMAIN, op) for op in SCHEMAS}


def infer_types(
    model: onnx.ModelProto, values: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, tuple | None], dict[str, int]]:
    """Return (value name -> shape with None for dynamic dims, value name -> ONNX elem type).

    Args:
        model: the model; it is not modified.
        values: values already computed (``graph.small_constants``): a node whose outputs are
            all here is replaced by them as initializers, so inference reads their values.

    Returns:
        Two dicts. Values whose rank is unknown map to None in the first.
    """
    # No data_prop: onnx 1.23's data propagation materializes one dim per element of a rank-1
    # tensor of known length, so a 123-byte model (Add after ConstantOfShape([2^31])) exhausts
    # memory inside inference. Values computed from constants come in through ``values``.
    values = values or {}
    inferred = _inferred(model, values, True) or _inferred(model, values, False) or model
    shapes: dict[str, tuple | None] = {}
    dtypes: dict[str, int] = {}
    graph = inferred.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            continue
        if tensor_type.elem_type:
            dtypes[info.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            dims = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            )
            shapes[info.name] = _merged(shapes.get(info.name), dims)
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
        dtypes[init.name] = init.data_type
    return shapes, dtypes


def _merged(known: tuple | None, dims: tuple) -> tuple:
    """Two descriptions of one value (a declared ``value_info`` and a graph output): each dim
    known in either is kept."""
    if known is None or len(known) != len(dims):
        return dims
    return tuple(d if d is not None else k for k, d in zip(known, dims))


def _inferred(model: onnx.ModelProto, values, declared: bool) -> onnx.ModelProto | None:
    """Inferred types, starting from the declared ``value_info`` or not; None when it fails
    (inference is a hint only: converters fall back to run-time shapes)."""
    try:
        light = _light(model, values, declared)
        return onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=False)
    except Exception as e:
        logger.debug("shape inference failed (declared shapes %s): %s", declared, e)
        return None


def _light(
    model: onnx.ModelProto, values: Mapping[str, np.ndarray], declared: bool = True
) -> onnx.ModelProto:
    """The model without the data of large initializers (declared as typed inputs instead).

    Inference only needs their types and shapes; serializing ~100 MB of weights for it cost
    more than the rest of reimport. Small ones keep their data for shape-value propagation.
    """
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    source, graph = model.graph, light.graph
    graph.name = source.name
    for node in source.node:
        if node.output and all(o in values for o in node.output):
            values_out = [onnx.numpy_helper.from_array(values[o], o) for o in node.output]
            graph.initializer.extend(values_out)
        else:
            graph.node.append(_inferable(node))
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    if declared:  # the exporter's shapes: where inference alone loses a dim (dynamo knows a
        graph.value_info.extend(source.value_info)  # symbolic expression), they keep it
    inputs = {i.name for i in source.input}
    for init in source.initializer:
        if math.prod(init.dims) <= SMALL:
            graph.initializer.append(init)
        elif init.name not in inputs:
            graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    return light


def _inferable(node: onnx.NodeProto) -> onnx.NodeProto:
    """``node``, or an Identity on output 0 standing in for :data:`IDENTITY_OPS`."""
    if (node.domain, node.op_type) not in IDENTITY_OPS:
        return node
    return onnx.helper.make_node("Identity", node.input[:1], node.output[:1], name=node.name)
