"""The small values a model computes from constants alone (shape arithmetic), bounded in size.

ONNX shape inference reads initializer values but stops at an op its data propagation lacks:
``ConstantOfShape(Unsqueeze(ReduceMax(c)))`` has no static shape, although ``c`` is a constant.
Walking the nodes in file order, a node whose inputs are all known and whose outputs shape
inference predicts to hold at most ``SMALL`` elements each (predicted before evaluating, see
:func:`qdqforge.graph.tensor_budget.node_output_elements`) is evaluated with onnx's reference
evaluator. Ops with subgraphs (a Loop's trip count is unbounded work) and random ops are never
evaluated. :func:`qdqforge.graph.shapes.infer_types` then reads these values as initializers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from qdqforge.graph.shapes import SMALL

log = logging.getLogger(__name__)

NEVER = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
    | {"Bernoulli", "Dropout"}
)


def small_constants(
    model: onnx.ModelProto, shapes: Mapping[str, tuple | None] | None = None
) -> dict[str, np.ndarray]:
    """Value name -> value of every node output computable from small constants alone.

    Args:
        model: the model (not modified).
        shapes: static shapes already inferred: ``Shape``/``Size`` of a tensor whose shape is
            fully known is a constant too.
    """
    from qdqforge.graph.tensor_budget import node_output_elements

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    known = {t.name: _array(t) for t in model.graph.initializer if math.prod(t.dims) <= SMALL}
    known = {name: value for name, value in known.items() if value is not None}
    computed: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        static = _static_shape_value(node, shapes or {})
        if static is not None:
            known[node.output[0]] = computed[node.output[0]] = static
            continue
        if not _evaluable(node, known):
            continue
        inputs = {name: known[name] for name in node.input if name}
        sizes = node_output_elements(node, inputs, opset)
        if any(size is None or size > SMALL for size in sizes):
            continue
        values = _evaluate(node, inputs, opset)
        for name, value in zip(node.output, values or ()):
            known[name] = computed[name] = np.asarray(value)
    return computed


def _static_shape_value(node: onnx.NodeProto, shapes: Mapping[str, tuple | None]):
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("Shape", "Size"):
        return None
    shape = shapes.get(node.input[0]) if node.input else None
    if shape is None or None in shape:
        return None
    if node.op_type == "Size":
        return np.array(math.prod(shape), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    return np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], dtype=np.int64)


def _array(tensor: onnx.TensorProto) -> np.ndarray | None:
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # corrupt data: the checker reports it; here the value is just unknown
        return None


def _evaluable(node: onnx.NodeProto, known: dict[str, np.ndarray]) -> bool:
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER:
        return False
    graphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in graphs for a in node.attribute):
        return False
    return all(name in known for name in node.input if name)


def _evaluate(node: onnx.NodeProto, inputs: dict[str, np.ndarray], opset: int) -> list | None:
    try:
        return ReferenceEvaluator(node, opsets={"": opset}).run(None, inputs)
    except Exception as e:  # an op the reference evaluator lacks: its value stays unknown
        log.debug("cannot evaluate %s (%s): %s", node.name, node.op_type, e)
        return None
