"""Run a pipeline for debugging: dump every stage, diff it, time it and check it in onnxruntime.

``run_debug`` is what ``qdqforge passes run`` and ``passes bisect`` call. For a dump directory it
writes::

    00_input.onnx                 the model as loaded
    NN_<pass>.onnx                the graph after pass NN (1-based)
    NN_<pass>.diff.json / .html   GraphDiff against the stage before
    passlog.jsonl                 one StageReport.to_log() line per pass
    failure/NN_<pass>.before.onnx the graph before a pass that raised

The failure dump is the snapshot taken before the pass ran: passes rewrite in place, so the live
graph may be half rewritten when the exception arrives.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from qdqforge.errors import GraphError, PassError
from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.graph.path_roles import check_roles
from qdqforge.graph.tensor_budget import check_model
from qdqforge.passes.debug.ops import OpCoverage, coverage, op_counts, unsupported
from qdqforge.passes.debug.recorder import PASSLOG, StageRecorder
from qdqforge.passes.debug.stage import StageReport
from qdqforge.passes.infra.base import PassContext
from qdqforge.passes.infra.manager import PassManager
from qdqforge.passes.infra.registry import get_pass

log = logging.getLogger(__name__)

EXIT_OK, EXIT_PASS_ERROR, EXIT_NUMERIC, EXIT_UNSUPPORTED = 0, 1, 2, 3


@dataclass
class DebugRunResult:
    """Everything a debug run found; ``exit_code`` maps it to the CLI's exit status."""

    passes: list[str]
    stages: list[StageReport] = field(default_factory=list)
    ops_before: Counter[str] = field(default_factory=Counter)
    ops_after: Counter[str] = field(default_factory=Counter)
    unsupported: list[OpCoverage] = field(default_factory=list)
    unsupported_where: str = ""
    failure: str | None = None
    failure_dump: str | None = None
    over_threshold: StageReport | None = None
    models: list[onnx.ModelProto] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.failure is not None:
            return EXIT_PASS_ERROR
        if self.unsupported:
            return EXIT_UNSUPPORTED
        return EXIT_NUMERIC if self.over_threshold is not None else EXIT_OK


def select_passes(
    pipeline: Sequence[str], *, until: str | None = None, skip: Sequence[str] = ()
) -> list[str]:
    """``pipeline`` cut after ``until`` (inclusive) and without ``skip``.

    Raises:
        PassError: a name is not registered, or ``until``/``skip`` is not in the pipeline.
    """
    for name in [*pipeline, *skip, *([until] if until else [])]:
        get_pass(name)
    for name in [*skip, *([until] if until else [])]:
        if name not in pipeline:
            raise PassError(f"pass {name!r} is not in the pipeline {', '.join(pipeline)}")
    chosen = list(pipeline[: pipeline.index(until) + 1] if until else pipeline)
    return [name for name in chosen if name not in skip]


def run_debug(
    model: str | os.PathLike | onnx.ModelProto,
    passes: Sequence[str],
    *,
    dump_dir: str | os.PathLike | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    max_error: float | None = None,
    ctx: PassContext | None = None,
    keep_models: bool = False,
) -> DebugRunResult:
    """Run ``passes`` over ``model`` stage by stage and report what each one did.

    Args:
        model: ONNX file or ModelProto.
        passes: registered pass names, in order.
        dump_dir: where the stage files go (None: write nothing).
        feeds: graph inputs; when given every stage runs in onnxruntime and its outputs are
            compared with the previous stage and with the input model.
        max_error: max |Δ| against the previous stage above which the run ends with exit 2.
        ctx: pass context (config, options); a fresh one by default.
        keep_models: keep every stage's ModelProto in the result (``passes bisect`` needs them).

    Returns:
        The :class:`DebugRunResult`. A pass that raises ends the run; the result carries its
        message instead of raising, so the caller still gets the stages before it.

    Raises:
        OutputError: ``model`` is one of the files the run writes into ``dump_dir``.
        GraphError: with ``feeds``, a tensor of the input model has a static shape over the
            one-tensor limit (:mod:`qdqforge.graph.tensor_budget`); nothing ran.
    """
    source = None if isinstance(model, onnx.ModelProto) else model
    check_roles("run_debug", inputs={"model": source}, outputs=stage_files(dump_dir, passes))
    proto = model if isinstance(model, onnx.ModelProto) else io.load_proto(model)
    result = DebugRunResult(list(passes), ops_before=op_counts(proto))
    result.unsupported = unsupported(coverage(proto))
    if result.unsupported:
        result.unsupported_where = "input"
        return result
    if feeds is not None:  # every stage will run in onnxruntime: no tensor over the budget
        check_model(proto, "the input model")
    recorder = StageRecorder(dump_dir, feeds, keep_models=keep_models)
    _run_passes(io.from_proto(proto), passes, recorder, ctx, result)
    _finish(result, recorder, max_error)
    return result


def stage_files(dump_dir: str | os.PathLike | None, passes: Sequence[str]) -> dict[str, Path]:
    """Every file a run writes into ``dump_dir``, by role (for the one-path-two-roles check)."""
    if dump_dir is None:
        return {}
    folder = Path(dump_dir)
    files = {"stage 00": folder / "00_input.onnx", "passlog": folder / PASSLOG}
    for i, name in enumerate(passes, 1):
        label = f"{i:02d}_{name}"
        for suffix in (".onnx", ".diff.json", ".diff.html"):
            files[f"stage {label}{suffix}"] = folder / f"{label}{suffix}"
    return files


def _run_passes(graph: Graph, names, recorder: StageRecorder, ctx, result) -> None:
    manager = PassManager([get_pass(n)() for n in names], instruments=[recorder])
    try:
        manager(graph, ctx or PassContext())
    except (PassError, GraphError) as e:  # GraphError: onnxruntime cannot run a stage
        result.failure, result.failure_dump = str(e), recorder.failure_dump
        log.error("%s", e)


def _finish(result: DebugRunResult, recorder: StageRecorder, max_error: float | None) -> None:
    result.stages, result.models = recorder.stages, recorder.models
    if recorder.last is not None:
        result.ops_after = op_counts(recorder.last)
        if result.failure is None:
            result.unsupported = unsupported(coverage(recorder.last))
            result.unsupported_where = "output" if result.unsupported else ""
    if max_error is not None:
        over = [s for s in result.stages if s.max_error is not None and s.max_error > max_error]
        result.over_threshold = over[0] if over else None
