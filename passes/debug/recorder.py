"""The instrument behind :func:`qdqforge.passes.debug.run.run_debug`.

Before each pass it snapshots the graph as a ModelProto; after it, it diffs the snapshot with the
new graph, writes the stage files and a ``passlog.jsonl`` line, and (with feeds) runs the stage in
onnxruntime. The pass time is measured between the end of the before-hook and the start of the
after-hook, so dumping and diffing do not count. Every file is written atomically (temp file and
rename); ``passlog.jsonl`` is rewritten whole after each line, so a reader never sees half a line.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from qdqforge.errors import GraphError
from qdqforge.graph import io
from qdqforge.graph import numerics as ort_numerics
from qdqforge.graph.diff.graph_diff import diff_graphs, write_diff_html
from qdqforge.graph.ir import Graph
from qdqforge.passes.debug.stage import StageReport

log = logging.getLogger(__name__)

PASSLOG = "passlog.jsonl"


class StageRecorder:
    """Instrument that turns every pass into a :class:`StageReport` (and files in ``directory``)."""

    def __init__(
        self,
        directory: str | os.PathLike | None,
        feeds: Mapping[str, np.ndarray] | None = None,
        *,
        keep_models: bool = False,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.feeds = dict(feeds) if feeds is not None else None
        self.keep_models = keep_models
        self.stages: list[StageReport] = []
        self.models: list[onnx.ModelProto] = []
        self.last: onnx.ModelProto | None = None
        self.failure_dump: str | None = None
        self._label, self._outputs, self._input_outputs = "00_input.onnx", None, None
        self._start = 0.0
        self._passlog: list[str] = []
        if self.directory is not None:
            io.atomic_write_text(self.directory / PASSLOG, "")

    def run_before_pass(self, graph: Graph, p, idx: int) -> None:
        self.last = io.to_proto(graph)
        if idx == 0:
            self._first_stage(self.last)
        self._start = time.perf_counter()

    def run_after_pass(self, graph: Graph, p, idx: int, result) -> None:
        ms = (time.perf_counter() - self._start) * 1e3
        before, after = self.last, io.to_proto(graph)
        label = f"{idx + 1:02d}_{p.name}"
        diff = diff_graphs(before, after, names=(self._label, f"{label}.onnx"))
        stage = StageReport.from_diff(
            idx + 1, p.name, diff, modified=result.modified, stats=dict(result.stats), ms=ms
        )
        self._write_stage(label, after, diff)
        self.stages.append(stage)
        try:
            self._check_numerics(after, stage)
        finally:  # an onnxruntime failure still gets its passlog line, with the reason
            self._log(stage)
        self.last, self._label = after, f"{label}.onnx"

    def run_after_failure(self, graph: Graph, p, idx: int, exc: BaseException) -> str | None:
        stage = StageReport(idx + 1, p.name, error=f"{type(exc).__name__}: {exc}")
        self._log(stage)
        if self.directory is None or self.last is None:
            return None
        folder = self.directory / "failure"
        path = io.save(self.last, folder / f"{idx + 1:02d}_{p.name}.before.onnx")
        io.atomic_write_text(folder / "traceback.txt", "".join(traceback.format_exception(exc)))
        self.failure_dump = str(path)
        return self.failure_dump

    def _first_stage(self, proto: onnx.ModelProto) -> None:
        self._keep(proto)
        if self.directory is not None:
            io.save(proto, self.directory / "00_input.onnx")
        if self.feeds is not None:
            self._outputs = self._input_outputs = self._run(proto, "00_input")

    def _check_numerics(self, proto: onnx.ModelProto, stage: StageReport) -> None:
        if self.feeds is None:
            return
        try:
            outputs = self._run(proto, f"{stage.idx:02d}_{stage.pass_name}")
        except GraphError as e:
            stage.error = str(e)
            raise
        stage.max_error = ort_numerics.max_abs_error(outputs, self._outputs)
        stage.error_vs_input = ort_numerics.max_abs_error(outputs, self._input_outputs)
        self._outputs = outputs

    def _write_stage(self, label: str, proto, diff) -> None:
        self._keep(proto)
        if self.directory is not None:
            io.save(proto, self.directory / f"{label}.onnx")
            io.atomic_write_text(self.directory / f"{label}.diff.json", diff.to_json(indent=1))
            write_diff_html(diff, self.directory / f"{label}.diff.html")

    def _log(self, stage: StageReport) -> None:
        log.info("stage %02d %s: %s", stage.idx, stage.pass_name, stage.to_log())
        if self.directory is not None:
            self._passlog.append(json.dumps(stage.to_log(), allow_nan=False) + "\n")
            io.atomic_write_text(self.directory / PASSLOG, "".join(self._passlog))

    def _keep(self, proto: onnx.ModelProto) -> None:
        if self.keep_models:
            self.models.append(proto)

    def _run(self, proto: onnx.ModelProto, label: str) -> list[np.ndarray]:
        try:
            return ort_numerics.run(proto, self.feeds)
        except Exception as e:
            raise GraphError(f"onnxruntime could not run stage {label}: {e}") from e
