"""Find the pass that broke the numbers, then the first tensors where it diverges.

Every stage runs in onnxruntime on the same inputs; the first pass whose outputs differ from the
input model's by more than ``threshold`` (max |Δ|) is the culprit. The stage before it and the
stage after it are then compared tensor by tensor
(:func:`qdqforge.graph.diff.graph_diff.diff_graphs` with inputs), and the diverging tensors are
listed in topological order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from qdqforge.graph.diff.graph_diff import diff_graphs
from qdqforge.graph.diff.model import TensorError
from qdqforge.passes.debug.run import DebugRunResult, run_debug
from qdqforge.passes.debug.stage import StageReport
from qdqforge.passes.infra.base import PassContext

DEFAULT_BISECT_THRESHOLD = 1e-4
MAX_TENSORS = 5


@dataclass
class BisectResult:
    """The culprit stage (None: every pass stays within ``threshold``) and its tensors."""

    run: DebugRunResult
    threshold: float
    culprit: StageReport | None = None
    tensors: list[TensorError] = field(default_factory=list)


def bisect(
    model: str | os.PathLike | onnx.ModelProto,
    passes: Sequence[str],
    feeds: Mapping[str, np.ndarray],
    *,
    threshold: float = DEFAULT_BISECT_THRESHOLD,
    ctx: PassContext | None = None,
) -> BisectResult:
    """Run ``passes`` on ``feeds``; find the first pass whose output error exceeds ``threshold``.

    Returns:
        A :class:`BisectResult`; ``tensors`` lists at most :data:`MAX_TENSORS` tensors of the
        culprit's output graph, in topological order, whose error against the stage before
        exceeds the threshold (relative divergence as flagged by the diff, or absolute error).
    """
    run = run_debug(model, passes, feeds=feeds, ctx=ctx, keep_models=True)
    result = BisectResult(run, threshold)
    over = [s for s in run.stages if (s.error_vs_input or 0.0) > threshold]
    if not over:
        return result
    result.culprit = over[0]
    before, after = run.models[result.culprit.idx - 1], run.models[result.culprit.idx]
    numerics = diff_graphs(before, after, inputs=feeds).numerics
    bad = [t for t in numerics.tensors if t.diverged or t.max_abs > threshold]
    result.tensors = bad[:MAX_TENSORS]
    return result
