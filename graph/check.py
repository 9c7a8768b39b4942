"""Graph invariants: unique names, single producers, no dangling inputs, acyclic, onnx.checker.

``validate`` raises :class:`qdqforge.errors.GraphError` naming the offending node or tensor.
"""

from __future__ import annotations

from collections import Counter

import onnx
import onnx_graphsurgeon as gs

from qdqforge.errors import GraphError
from qdqforge.graph.ir import Graph
from qdqforge.graph.toposort import toposort


def check_unique_node_names(graph: Graph) -> None:
    counts = Counter(n.name for n in graph.gs.nodes)
    dupes = sorted(name for name, c in counts.items() if c > 1)
    if dupes:
        raise GraphError(f"duplicate node names: {', '.join(repr(d) for d in dupes[:8])}")


def check_single_producers(graph: Graph) -> None:
    produced: dict[str, str] = {}
    for node in graph.gs.nodes:
        for out in node.outputs:
            if out.name in produced:
                raise GraphError(
                    f"tensor {out.name!r} is produced by both {produced[out.name]!r} "
                    f"and {node.name!r}"
                )
            produced[out.name] = node.name


def check_no_dangling(graph: Graph) -> None:
    """Every node input is a graph input, a constant or some node's output."""
    known = {t.name for t in graph.gs.inputs}
    known.update(n for n, t in graph.gs.tensors().items() if isinstance(t, gs.Constant))
    known.update(o.name for n in graph.gs.nodes for o in n.outputs)
    for node in graph.gs.nodes:
        for t in node.inputs:
            if t.name and t.name not in known:
                raise GraphError(
                    f"node {node.name!r} ({node.op}) reads undefined tensor {t.name!r}"
                )
    for t in graph.gs.outputs:
        if t.name not in known:
            raise GraphError(f"graph output {t.name!r} is not produced by any node")


def check_proto(model: onnx.ModelProto, *, shape_inference: bool = True) -> None:
    """onnx.checker plus (optionally) strict-free shape inference, wrapped in GraphError."""
    try:
        onnx.checker.check_model(model)
        if shape_inference:
            onnx.shape_inference.infer_shapes(model, check_type=True)
    except Exception as e:
        raise GraphError(f"ONNX model fails the checker: {e}") from e


def validate(graph: Graph, *, run_checker: bool = True) -> None:
    """Run every invariant check; toposorts the graph (raises on cycles)."""
    check_unique_node_names(graph)
    check_single_producers(graph)
    check_no_dangling(graph)
    toposort(graph)
    if run_checker:
        from qdqforge.graph.io import to_proto  # local: io imports ir, keep check importable

        check_proto(to_proto(graph))
