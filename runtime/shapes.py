"""Static shapes and dtypes from ``onnx.shape_inference`` (never fatal: unknown means None)."""

from __future__ import annotations

import logging

import onnx

logger = logging.getLogger(__name__)


def infer_types(model: onnx.ModelProto) -> tuple[dict[str, tuple | None], dict[str, int]]:
    """Return (value name -> shape with None for dynamic dims, value name -> ONNX elem type).

    Args:
        model: the model; it is not modified.

    Returns:
        Two dicts. Values whose rank is unknown map to None in the first.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as e:  # inference is a hint only; converters fall back to run-time shapes
        logger.debug("shape inference failed (%s); continuing without static shapes", e)
        inferred = model
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
            shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            )
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        dtypes[init.name] = init.data_type
    return shapes, dtypes
