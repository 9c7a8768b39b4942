"""Build plan: toposorted nodes, pattern claims, coverage check and initializer roles.

Coverage is checked before anything is built: every node is resolved and all unsupported ops are
reported in ONE :class:`UnsupportedOpsError` (domain, op, opset, count, first 3 node names).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from qdqforge.errors import UnsupportedOpsError
from qdqforge.graph import meta as keys
from qdqforge.graph.graph_index import GraphIndex
from qdqforge.graph.toposort import producers_first, topological_order
from qdqforge.runtime import registry
from qdqforge.runtime.registry import OnnxNode
from qdqforge.runtime.store import Role
from qdqforge.safe_text import shown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One unit of emission: a single node, or a pattern's nodes (root last)."""

    nodes: tuple[OnnxNode, ...]
    fn: Callable
    pattern: str | None = None

    @property
    def root(self) -> OnnxNode:
        return self.nodes[-1]


class PlanView:
    """The :class:`registry.GraphView` pattern matchers query: a
    :class:`~qdqforge.graph.graph_index.GraphIndex` over the plan's (toposorted) nodes."""

    def __init__(
        self,
        model: onnx.ModelProto,
        nodes: list[OnnxNode],
        roles: dict[str, Role],
        detached: dict[str, np.ndarray] | None = None,
    ):
        self.inits = {i.name: i for i in model.graph.initializer}
        self.detached = detached or {}  # graph.detached: arrays the proto holds placeholders of
        self.roles = roles
        self.outputs = {o.name for o in model.graph.output}
        self._nodes = nodes
        self._index = node_index(nodes)

    def producer(self, value: str) -> OnnxNode | None:
        position = self._index.producer.get(value)
        return None if position is None else self._nodes[position]

    def consumers(self, value: str) -> list[OnnxNode]:
        """Each reading node once (``Mul(x, x)`` reads ``x`` once here), in plan order."""
        return [self._nodes[i] for i in dict.fromkeys(self._index.consumers.get(value, ()))]

    def is_output(self, value: str) -> bool:
        return value in self.outputs

    def is_param(self, value: str) -> bool:
        return self.roles.get(value) is Role.PARAM

    def initializer(self, value: str) -> np.ndarray | None:
        if value in self.detached:
            return self.detached[value]
        if value in self.inits:
            return numpy_helper.to_array(self.inits[value])
        node = self.producer(value)
        if node is not None and node.op_type == "Constant" and node.domain == "":
            from qdqforge.runtime.converters.constant import constant_value

            return constant_value(node)
        return None


def opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Domain -> opset version ("ai.onnx" folded into "")."""
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}


def node_index(nodes: list[OnnxNode]) -> GraphIndex:
    """Producers and consumers of ``nodes``' tensors, by position in ``nodes``."""
    return GraphIndex([n.inputs for n in nodes], [n.outputs for n in nodes])


def toposort(model: onnx.ModelProto) -> list[OnnxNode]:
    """The graph's nodes, producers first, stable with respect to file order (graph.toposort's
    Kahn sort), each node that reads no graph input placed just before its first consumer
    (:func:`weights_just_in_time`); GraphError naming the nodes on a cycle."""
    nodes = [OnnxNode.from_proto(n) for n in model.graph.node]
    index = node_index(nodes)
    order = topological_order(index, lambda i: (nodes[i].name, nodes[i].op_type))
    if any(_has_subgraph(n) for n in nodes):  # their bodies' reads are not in node.inputs
        return [nodes[i] for i in order]
    inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    return [nodes[i] for i in weights_just_in_time(order, nodes, index, inputs)]


# ops whose result does not depend on their inputs alone: they keep their place (RNG order)
_ANCHORED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
             "Bernoulli", "Multinomial"}  # fmt: skip


def weights_just_in_time(
    order: list[int], nodes: list[OnnxNode], index: GraphIndex, graph_inputs: set[str]
) -> list[int]:
    """``order`` with every node that reads no graph input, directly or through its producers
    (a QAT weight's fake quantization, a weight's Transpose, shape constants), moved to just
    before its first consumer; the other nodes keep their order.

    Kahn's sort puts such nodes first, so the module computed every layer's fake-quantized
    weight before the first layer ran: a QAT module's forward without gradients (evaluation,
    the clip-initialising forwards, the save's check) held them all at once, 1x the weights;
    now one layer's at a time. Values do not change: only when these pure functions of the
    weights run.
    """
    static = set()
    for i in order:
        node, reads = nodes[i], [t for t in nodes[i].inputs if t]
        if node.op_type in _ANCHORED and node.domain == "":
            continue
        producers = [index.producer.get(t) for t in reads]
        if not any(t in graph_inputs for t in reads) and all(
            p is None or p in static for p in producers
        ):
            static.add(i)
    candidates = [*(i for i in order if i not in static), *order]  # then what feeds only outputs
    return producers_first(candidates, static, lambda j: _producers(nodes[j], index))


def _producers(node, index) -> list:
    return [index.producer.get(tensor) if tensor else None for tensor in node.inputs]


def _has_subgraph(node: OnnxNode) -> bool:
    return any(
        isinstance(v, onnx.GraphProto)
        or (isinstance(v, list) and v and isinstance(v[0], onnx.GraphProto))
        for v in node.attrs.values()
    )


def decide_roles(model: onnx.ModelProto, nodes: list[OnnxNode]) -> dict[str, Role]:
    """Initializer name -> role, from our exporter's metadata or, without it, from dtype/size."""
    meta = {p.key: p.value for p in model.metadata_props}
    params = set(keys.load_names(meta.get(keys.PARAMETERS), keys.PARAMETERS))
    buffers = set(keys.load_names(meta.get(keys.BUFFERS), keys.BUFFERS))
    has_meta = keys.PARAMETERS in meta or keys.BUFFERS in meta
    bn_stats = _read_at(nodes, {"BatchNormalization": (3, 4)})
    settings = _read_at(nodes, _SETTINGS) - _read_at(nodes, None, exclude=_SETTINGS)
    roles: dict[str, Role] = {}
    for init in model.graph.initializer:
        name = init.name
        if has_meta:
            role = Role.PARAM if name in params else Role.BUFFER if name in buffers else Role.CONST
        elif name in bn_stats:
            role = Role.BUFFER
        elif name in settings:
            role = Role.CONST
        else:
            floating = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).kind == "f"
            role = Role.PARAM if floating and np.prod(init.dims) > 1 else Role.CONST
        roles[name] = role
    return roles


# Float inputs that configure an op rather than carry trainable data (foreign files only).
_SETTINGS = {"Resize": (1, 2), "Upsample": (1,), "Pad": (2,), "Clip": (1, 2), "Dropout": (1,)}


def _read_at(nodes: list[OnnxNode], where: dict | None, exclude: dict | None = None) -> set[str]:
    """Values read at the given (op -> input positions); with ``exclude``, read anywhere else."""
    names = set()
    for node in nodes:
        if exclude is not None:
            skip = exclude.get(node.op_type, ())
            names |= {x for i, x in enumerate(node.inputs) if x and i not in skip}
        else:
            names |= {node.inputs[i] for i in where.get(node.op_type, ()) if i < len(node.inputs)}
    return names


def make_plan(nodes: list[OnnxNode], index: PlanView, versions: dict[str, int]) -> list[Step]:
    """Claim patterns (last node first), resolve the rest; raise on any unsupported op."""
    claimed: dict[int, Step] = {}  # keyed by id(): foreign files may repeat or omit node names
    for node in reversed(nodes):
        if id(node) in claimed or node.domain:
            continue
        for pattern in registry.patterns(node.op_type):
            matched = pattern.match(node, index)
            if matched and not any(id(m) in claimed for m in matched):
                step = Step(tuple(matched), pattern.convert, pattern.name)
                claimed.update({id(m): step for m in matched})
                break
    steps, missing = [], defaultdict(list)
    for node in nodes:
        step = claimed.get(id(node))
        if step is not None:
            if step.root is node:
                steps.append(step)
            continue
        fn = registry.resolve(node.op_type, node.domain, versions.get(node.domain, 1))
        if fn is None:
            missing[(node.domain, node.op_type, versions.get(node.domain, 0))].append(node.name)
        else:
            steps.append(Step((node,), fn))
    if missing:
        raise _unsupported(missing)
    return steps


def _unsupported(missing: dict[tuple[str, str, int], list[str]]) -> UnsupportedOpsError:
    table = [
        {"domain": d or "ai.onnx", "op": op, "opset": v, "count": len(names), "nodes": names[:3]}
        for (d, op, v), names in sorted(missing.items())
    ]
    shown_rows = [  # names from the file, escaped: the message reaches terminals
        {**r, "domain": shown(r["domain"]), "op": shown(r["op"]), "nodes": map(shown, r["nodes"])}
        for r in table
    ]
    lines = [f"{'domain':<16} {'op':<24} {'opset':>5} {'count':>5}  first nodes"]
    lines += [
        f"{r['domain']:<16} {r['op']:<24} {r['opset']:>5} {r['count']:>5}  {', '.join(r['nodes'])}"
        for r in shown_rows
    ]
    ops = ", ".join(r["op"] for r in shown_rows)
    return UnsupportedOpsError(
        f"no converter for {len(table)} op(s) ({ops}):\n" + "\n".join(lines), table
    )
