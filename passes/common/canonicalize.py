"""canonicalize: lift Constant nodes, drop Identity, fold constant subgraphs, drop zero conv biases.

Before / after (dynamo export of a bias-free Conv)::

    Shape(conv.weight) -> Expand(CastLike(0, x)) --bias--> Conv      Conv(x, conv.weight)
    Constant -> Mul                                                   Mul(x, <initializer>)
    Identity(t) -> consumer                                           consumer(t)

Folding evaluates a node with onnx's reference evaluator when every input is constant and shape
inference of the node on those inputs says its outputs hold at most ``FOLD_ELEMENTS`` elements
(checked before evaluating: a ConstantOfShape of [2^31] is never materialized). Nodes that
read a torch parameter or buffer are never folded (names and trainability must survive), except
``Shape``/``Size``, which only read the static shape. Folded values keep the output's name.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx.reference import ReferenceEvaluator

from qdqforge.graph.ir import Graph
from qdqforge.graph.tensor_budget import FOLD_ELEMENTS, node_output_elements
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass

log = logging.getLogger(__name__)

SHAPE_ONLY_OPS = ("Shape", "Size")
NEVER_FOLD = ("Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike")


@register_pass
class CanonicalizePass(GraphPass, name="canonicalize"):
    """Lift Constant nodes, remove Identity, fold constant subgraphs, drop all-zero conv biases."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {
            "constants_lifted": _lift_constants(graph),
            "identities_removed": _remove_identities(graph),
        }
        stats["nodes_folded"] = _fold_constants(graph)
        stats["zero_biases_dropped"] = _drop_zero_conv_bias(graph)
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, any(stats.values()), stats)


def _replace_uses(graph: Graph, old: gs.Tensor, new: gs.Tensor) -> None:
    for consumer in list(old.outputs):
        for i, t in enumerate(consumer.inputs):
            if t is old:
                consumer.inputs[i] = new


def _is_graph_output(graph: Graph, tensor: gs.Tensor) -> bool:
    return any(tensor is o for o in graph.gs.outputs)


def _lift_constants(graph: Graph) -> int:
    lifted = 0
    for node in [n for n in graph.gs.nodes if n.op == "Constant" and not n.domain]:
        out = node.outputs[0]
        if _is_graph_output(graph, out):
            continue
        _replace_uses(graph, out, gs.Constant(out.name, _constant_attr_value(node)))
        node.outputs.clear()
        lifted += 1
    return lifted


def _constant_attr_value(node: gs.Node) -> np.ndarray:
    (key, value), *_ = node.attrs.items()
    if isinstance(value, gs.Constant):
        return np.asarray(value.values)
    dtypes = {"value_float": np.float32, "value_floats": np.float32}
    return np.asarray(value, dtype=dtypes.get(key, np.int64))


def _remove_identities(graph: Graph) -> int:
    removed = 0
    for node in [n for n in graph.gs.nodes if n.op == "Identity" and not n.domain]:
        src, out = node.inputs[0], node.outputs[0]
        if _is_graph_output(graph, out):
            continue
        _replace_uses(graph, out, src)
        node.outputs.clear()
        removed += 1
    return removed


def _fold_constants(graph: Graph) -> int:
    protected = set(graph.parameters) | set(graph.buffers)
    folded = 0
    toposort(graph)
    for node in list(graph.gs.nodes):
        if not _foldable(graph, node, protected):
            continue
        values = _evaluate(graph, node)
        if values is None:
            continue
        for out, value in zip(node.outputs, values):
            _replace_uses(graph, out, gs.Constant(out.name, np.asarray(value)))
        node.outputs.clear()
        folded += 1
    return folded


def _foldable(graph: Graph, node: gs.Node, protected: set[str]) -> bool:
    if node.domain or node.op in NEVER_FOLD or not node.outputs:
        return False
    if any(_is_graph_output(graph, o) for o in node.outputs):
        return False
    inputs = [t for t in node.inputs if t.name]
    if not inputs or not all(isinstance(t, gs.Constant) for t in inputs):
        return node.op == "CastLike" and isinstance(node.inputs[0], gs.Constant)
    if node.op in SHAPE_ONLY_OPS:
        return True
    return not any(t.name in protected for t in inputs)


def _evaluate(graph: Graph, node: gs.Node) -> list[np.ndarray] | None:
    """Run ``node`` alone in the reference evaluator; None if it cannot or is too big."""
    if node.op == "CastLike":
        dtype = node.inputs[1].dtype
        return None if dtype is None else [np.asarray(node.inputs[0].values).astype(dtype)]
    feeds = {t.name: np.asarray(t.values) for t in node.inputs if t.name}
    if node.op in SHAPE_ONLY_OPS:
        return [_shape_only(node, feeds[node.inputs[0].name])]
    proto = onnx.helper.make_node(
        node.op,
        [t.name for t in node.inputs],
        [t.name for t in node.outputs],
        name=node.name,
        **{k: _attr(v) for k, v in node.attrs.items()},
    )
    sizes = node_output_elements(proto, feeds, graph.opset)
    if any(size is None or size > FOLD_ELEMENTS for size in sizes):
        log.debug("not folding %s (%s): output elements %s", node.name, node.op, sizes)
        return None
    try:
        return ReferenceEvaluator(proto, opsets={"": graph.opset}).run(None, feeds)
    except Exception as e:  # an op the reference evaluator lacks: leave it to the runtime
        log.debug("cannot fold %s (%s): %s", node.name, node.op, e)
        return None


def _shape_only(node: gs.Node, value: np.ndarray) -> np.ndarray:
    if node.op == "Size":
        return np.asarray(value.size, dtype=np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return np.asarray(value.shape[start:end], dtype=np.int64)


def _attr(value):
    if isinstance(value, gs.Constant):
        return onnx.numpy_helper.from_array(np.asarray(value.values))
    return value


def _drop_zero_conv_bias(graph: Graph) -> int:
    protected = set(graph.parameters) | set(graph.buffers)
    dropped = 0
    for node in graph.gs.nodes:
        if node.op not in ("Conv", "ConvTranspose") or len(node.inputs) < 3:
            continue
        bias = node.inputs[2]
        zero = isinstance(bias, gs.Constant) and not np.any(np.asarray(bias.values))
        if zero and bias.name not in protected:
            node.inputs.pop(2)
            dropped += 1
    return dropped
