"""Sizes of the tensors a model would make qdqforge allocate, known before anything is evaluated.

A 131-byte ONNX file can hold ``ConstantOfShape([2^31, 1])``: folding it, building it into a
torch module or running it in onnxruntime allocates 8 GiB. Every place that evaluates a model's
constants asks this module first:

* :func:`node_output_elements`: one node on constant inputs (constant folding). ONNX shape
  inference of that node alone, its inputs as initializers, reads their values (ConstantOfShape,
  Expand, Tile, Range, Resize, Pad, OneHot, Reshape, ...). A dim inference cannot tell (NonZero,
  Unique) is bounded by the largest input's element count; an output of unknown rank is None,
  which callers read as "do not evaluate".
* :func:`check_model` / :func:`check_shapes`: every tensor of a whole model whose static shape
  holds more than :func:`max_tensor_bytes` is a :class:`GraphError` naming it and its producer,
  before onnxruntime or the runtime builder touch the model.
* :func:`check_array_shape`: an array qdqforge is about to create (random inputs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from qdqforge.errors import GraphError, InputDataError

FOLD_ELEMENTS = 1 << 20  # constant folding never materializes more elements than this
DEFAULT_MAX_TENSOR_BYTES = 1 << 31  # one tensor; QDQFORGE_MAX_TENSOR_BYTES raises or lowers it
SMALL = 4096  # inputs up to this many elements carry their values into the inference
ENV = "QDQFORGE_MAX_TENSOR_BYTES"


def max_tensor_bytes() -> int:
    """The size limit of one tensor: ``QDQFORGE_MAX_TENSOR_BYTES`` or 2 GiB.

    Raises:
        InputDataError: the variable is set but not a positive integer.
    """
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_TENSOR_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputDataError(f"{ENV}={text!r}: expected a positive number of bytes")
    return value


def node_output_elements(
    node: onnx.NodeProto, inputs: Mapping[str, np.ndarray], opset: int
) -> list[int | None]:
    """Element count of each output of ``node`` evaluated on ``inputs`` (None: unknown)."""
    model = _single_node_model(node, inputs, opset)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # an op inference rejects: its size is unknown
        return [None] * len(node.output)
    known = {v.name: v for v in [*inferred.graph.output, *inferred.graph.value_info]}
    bound = max((int(np.asarray(a).size) for a in inputs.values()), default=1)
    return [_elements(known.get(name), bound) for name in node.output]


def _single_node_model(
    node: onnx.NodeProto, inputs: Mapping[str, np.ndarray], opset: int
) -> onnx.ModelProto:
    graph = onnx.GraphProto(name="one_node")
    graph.node.append(node)
    for name, array in inputs.items():
        array = np.asarray(array)
        if array.size <= SMALL and array.dtype != object:
            graph.initializer.append(onnx.numpy_helper.from_array(array, name))
        else:
            elem = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
            graph.input.append(onnx.helper.make_tensor_value_info(name, elem, array.shape))
    graph.output.extend(onnx.ValueInfoProto(name=name) for name in node.output if name)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])


def _elements(info: onnx.ValueInfoProto | None, bound: int) -> int | None:
    if info is None or not info.type.tensor_type.HasField("shape"):
        return None
    shape = info.type.tensor_type.shape
    dims = [d.dim_value if d.HasField("dim_value") else bound for d in shape.dim]
    return math.prod(dims)


def check_model(model: onnx.ModelProto, what: str = "the model") -> None:
    """Refuse ``model`` when a node output's static shape holds more than the limit.

    Shapes come from ONNX inference over the model with its small constant values computed
    (:mod:`qdqforge.graph.small_constants`). Initializers are not checked: their bytes are
    already in the file.

    Raises:
        GraphError: names the tensor, its producing node, shape and size.
    """
    from qdqforge.graph.shapes import infer_types
    from qdqforge.graph.small_constants import small_constants

    shapes, _ = infer_types(model)
    shapes, dtypes = infer_types(model, small_constants(model, shapes))
    check_shapes(shapes, dtypes, model.graph.node, what)


def check_shapes(
    shapes: Mapping[str, tuple | None],
    dtypes: Mapping[str, int],
    nodes: Iterable[Any],
    what: str = "the model",
) -> None:
    """:func:`check_model` on shapes already inferred (the runtime builder has them).

    Args:
        shapes, dtypes: value name -> static shape (None dims unknown) / ONNX elem type.
        nodes: the graph's nodes (anything with ``name``, ``op_type`` and ``output(s)``).
        what: the model, as the message names it.
    """
    limit = max_tensor_bytes()
    for node in nodes:
        outputs = getattr(node, "outputs", None) or getattr(node, "output", ())
        for name in outputs:
            shape = shapes.get(name)
            if not shape or None in shape:
                continue
            size = _bytes(shape, dtypes.get(name))
            if size > limit:
                raise GraphError(
                    f"{what}: tensor {name!r} (output of {node.op_type} node {node.name!r}) "
                    f"would hold shape {list(shape)}, {_gib(size)}, over the {_gib(limit)} "
                    f"limit for one tensor; refused before evaluating anything (set {ENV} to "
                    "raise the limit for a model you trust)"
                )


def check_array_shape(shape: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse to create an array of ``shape`` when a dim is negative or it is over the limit.

    Raises:
        InputDataError: names ``what``, the shape and the limit.
    """
    if any(int(d) < 0 for d in shape):
        raise InputDataError(f"{what}: shape {list(shape)} has a negative dim")
    # zero dims do not shrink the bound: numpy refuses [0, 2^20, 2^20, 2^20] as too big
    size = math.prod(max(int(d), 1) for d in shape) * np.dtype(dtype).itemsize
    if size > max_tensor_bytes():
        raise InputDataError(
            f"{what}: shape {list(shape)} of {np.dtype(dtype).name} is {_gib(size)}, over the "
            f"{_gib(max_tensor_bytes())} limit for one tensor (set {ENV} to raise it)"
        )


def _bytes(shape: tuple, elem_type: int | None) -> int:
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize if elem_type else 1
    except (KeyError, TypeError, ValueError):
        itemsize = 1
    return math.prod(shape) * max(itemsize, 1)


def _gib(size: int) -> str:
    return f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size / 2**20:.3g} MiB"
