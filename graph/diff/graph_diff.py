"""Graph diff: what a rewrite did to a model, node by node (graph/diff/README.md).

``diff_graphs(a, b)`` matches the nodes of A and B (provenance, unique name, output names, then a
structural signature: :mod:`qdqforge.graph.diff.match`), compares each pair (op, attributes,
inputs, outputs, the constants it reads) and returns a :class:`GraphDiff` that serializes to JSON.
With ``inputs`` it also runs both graphs in onnxruntime and reports the error of every common
tensor, flagging the first divergence. :func:`qdqforge.graph.diff.html.write_diff_html` turns
the result into one offline HTML page (re-exported here).

Example::

    diff = diff_graphs("before.onnx", "after.onnx")
    diff.removed_names   # {"bn/bn"}
    diff.changed_names   # {"conv/op"}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from qdqforge.graph import io
from qdqforge.graph.diff.compare import TensorComparer, compare_pair
from qdqforge.graph.diff.html import write_diff_html
from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.match import match_nodes
from qdqforge.graph.diff.model import GraphDiff, NodeChange
from qdqforge.graph.diff.numerics import DEFAULT_THRESHOLD, tensor_errors
from qdqforge.graph.diff.picture import neighbourhood
from qdqforge.graph.diff.summary import initializer_diff, io_changes, model_summary, op_counts
from qdqforge.graph.ir import Graph

__all__ = ["GraphDiff", "diff_graphs", "write_diff_html"]

log = logging.getLogger(__name__)

ModelLike = onnx.ModelProto | Graph | str | os.PathLike


def diff_graphs(
    a: ModelLike,
    b: ModelLike,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    names: tuple[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> GraphDiff:
    """Compare graph ``a`` (before) with graph ``b`` (after).

    Args:
        a: the model before, as a ModelProto, a :class:`Graph` or a path to an ONNX file.
        b: the model after, same kinds.
        inputs: graph input name -> array; when given, both graphs run in onnxruntime and every
            common intermediate tensor is compared (``GraphDiff.numerics``).
        names: labels of the two models in the report (default: file names, else "A"/"B").
        threshold: relative error ``max|Δ| / max|A|`` above which a tensor counts as diverged.

    Returns:
        The :class:`GraphDiff`; nodes of B that match no node of A are ``added``, the reverse
        ``removed``, and matched pairs that differ in any way are ``changed``.

    Raises:
        GraphError: a file cannot be read or a graph cannot run in onnxruntime.
        InputDataError: ``inputs`` lacks an input one of the graphs needs.
    """
    label_a, label_b = names or (_label(a, "A"), _label(b, "B"))
    ia, ib = DiffIndex(_proto(a)), DiffIndex(_proto(b))
    matching = match_nodes(ia, ib)
    tensors = TensorComparer(ia, ib)
    changed, unchanged = _compare_pairs(matching.pairs, tensors)
    diff = GraphDiff(
        a=model_summary(ia, label_a),
        b=model_summary(ib, label_b),
        op_counts=op_counts(ia, ib),
        io=io_changes(ia, ib),
        added=tuple(ib.info(i) for i in matching.b_left()),
        removed=tuple(ia.info(i) for i in matching.a_left()),
        changed=tuple(c for _, c in changed),
        unchanged=unchanged,
        initializers=initializer_diff(tensors),
        neighbourhood=neighbourhood(matching, {bi for bi, _ in changed}),
        numerics=None if inputs is None else tensor_errors(ia, ib, inputs, threshold),
    )
    log.info(
        "diff %s -> %s: +%d -%d ~%d nodes, %d unchanged",
        label_a,
        label_b,
        len(diff.added),
        len(diff.removed),
        len(diff.changed),
        unchanged,
    )
    return diff


def _compare_pairs(pairs, tensors: TensorComparer) -> tuple[list[tuple[int, NodeChange]], int]:
    changed = []
    for ai, bi, how in pairs:
        change = compare_pair(ai, bi, how, tensors)
        if change is not None:
            changed.append((bi, change))
    return changed, len(pairs) - len(changed)


def _proto(model: ModelLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, Graph):
        return io.to_proto(model)
    return io.load_proto(model)


def _label(model: ModelLike, default: str) -> str:
    if isinstance(model, (str, os.PathLike)):
        return Path(model).name
    return default
