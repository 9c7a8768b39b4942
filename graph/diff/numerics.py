"""Per-tensor numeric error between two graphs on the same inputs (onnxruntime, CPU).

Every tensor that a node computes in both graphs (same name) is exposed as an extra graph output,
both graphs run once, and the errors are listed in B's topological order. The first tensor over
the threshold is where the rewrite started to change the numbers (AIMET's layer-output compare).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx

from qdqforge.errors import GraphError, InputDataError
from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.model import Numerics, TensorError
from qdqforge.graph.diff.values import abs_rel_error
from qdqforge.graph.exposed_run import run_exposed
from qdqforge.graph.tensor_budget import check_model

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 1e-4  # relative error max|Δ| / max|A| that counts as a divergence
ABS_FLOOR = 1e-6  # errors below this never count (float32 rounding of tiny tensors)


def tensor_errors(
    a: DiffIndex,
    b: DiffIndex,
    inputs: Mapping[str, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
) -> Numerics:
    """Run both graphs on ``inputs`` and compare every common intermediate tensor."""
    check_model(a.model, "graph A")
    check_model(b.model, "graph B")
    common = [t for node in b.nodes for t in node.output if t and t in a.producer]
    a_values = _run_exposing(a.model, common, inputs, "A")
    b_values = _run_exposing(b.model, common, inputs, "B")
    errors = []
    for name in common:
        node = b.nodes[b.producer[name]]
        errors.append(_error(name, node, a_values[name], b_values[name], threshold))
    first = next((e.name for e in errors if e.diverged), None)
    if first is not None:
        log.info("first diverging tensor: %s", first)
    return Numerics(threshold, tuple(errors), first)


def _error(name: str, node, x: np.ndarray, y: np.ndarray, threshold: float) -> TensorError:
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        max_abs = max_rel = float("inf")
    elif x.dtype.kind in "biufc" and y.dtype.kind in "biufc":
        max_abs, max_rel = abs_rel_error(x, y)
    else:
        max_abs = max_rel = 0.0 if np.array_equal(x, y) else float("inf")
    diverged = max_abs > ABS_FLOOR and max_rel > threshold
    return TensorError(name, node.name, node.op_type, y.shape, max_abs, max_rel, diverged)


def _run_exposing(
    model: onnx.ModelProto, tensors: list[str], inputs: Mapping[str, np.ndarray], side: str
) -> dict[str, np.ndarray]:
    feeds = _feeds(model, inputs, side)
    try:
        return run_exposed(model, tensors, feeds)
    except Exception as e:
        raise GraphError(f"onnxruntime could not run graph {side} for the numeric diff: {e}") from e


def _feeds(
    model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], side: str
) -> dict[str, np.ndarray]:
    inits = {t.name for t in model.graph.initializer}
    wanted = [i.name for i in model.graph.input if i.name not in inits]
    missing = [n for n in wanted if n not in inputs]
    if missing:
        raise InputDataError(
            f"graph {side} needs inputs {missing} for the numeric diff; given: {sorted(inputs)}"
        )
    return {n: np.asarray(inputs[n]) for n in wanted}
