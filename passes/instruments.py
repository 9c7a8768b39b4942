"""Pass instruments: graph dumps, timing and onnxruntime numeric checks.

``DumpGraphs`` is switched on without code changes by ``QDQFORGE_DEBUG_DIR``: every pipeline then
writes ``NN_<pass>.onnx`` after each pass and ``failure/NN_<pass>.before.onnx`` on failure.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from qdqforge.graph import io
from qdqforge.graph.ir import Graph

DEBUG_DIR_ENV = "QDQFORGE_DEBUG_DIR"


class DumpGraphs:
    """Write the graph after every pass (and before a failing one) into ``directory``."""

    def __init__(self, directory: str | os.PathLike, *, prefix: str = "") -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.written: list[Path] = []

    def run_before_pass(self, graph: Graph, p, idx: int) -> None:
        if idx == 0:
            self._write(graph, f"{self.prefix}00_input.onnx")

    def run_after_pass(self, graph: Graph, p, idx: int, result) -> None:
        self._write(graph, f"{self.prefix}{idx + 1:02d}_{p.name}.onnx")

    def run_after_failure(self, graph: Graph, p, idx: int, exc: BaseException) -> str:
        folder = self.directory / "failure"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.prefix}{idx + 1:02d}_{p.name}.before.onnx"
        io.save(graph, path)
        (folder / "traceback.txt").write_text("".join(traceback.format_exception(exc)))
        return str(path)

    def _write(self, graph: Graph, name: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.written.append(io.save(graph, self.directory / name))


class Timing:
    """Wall time and node-count deltas per pass, appended as JSON lines to ``log_path``."""

    def __init__(self, log_path: str | os.PathLike | None = None) -> None:
        self.log_path = Path(log_path) if log_path else None
        self.entries: list[dict] = []
        self._start = 0.0
        self._nodes = 0

    def run_before_pass(self, graph: Graph, p, idx: int) -> None:
        self._start, self._nodes = time.perf_counter(), len(graph.gs.nodes)

    def run_after_pass(self, graph: Graph, p, idx: int, result) -> None:
        entry = {
            "idx": idx,
            "pass": p.name,
            "modified": result.modified,
            "ms": round((time.perf_counter() - self._start) * 1e3, 3),
            "nodes_before": self._nodes,
            "nodes_after": len(graph.gs.nodes),
            "stats": dict(result.stats),
        }
        self.entries.append(entry)
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def run_after_failure(self, graph: Graph, p, idx: int, exc: BaseException) -> None:
        return None


def instruments_from_env(prefix: str = "") -> list:
    """Instruments requested through the environment (``QDQFORGE_DEBUG_DIR``)."""
    directory = os.environ.get(DEBUG_DIR_ENV)
    if not directory:
        return []
    return [DumpGraphs(directory, prefix=prefix), Timing(Path(directory) / "passlog.jsonl")]


class NumericCheck:
    """Run onnxruntime before and after each pass; record max |delta| of the outputs.

    Raises NumericMismatchError when ``threshold`` is set and exceeded.
    """

    def __init__(self, feeds: dict, *, threshold: float | None = None) -> None:
        self.feeds = feeds
        self.threshold = threshold
        self.errors: dict[str, float] = {}
        self._before = None

    def run_before_pass(self, graph: Graph, p, idx: int) -> None:
        from qdqforge.graph.numerics import run

        self._before = run(graph, self.feeds)

    def run_after_pass(self, graph: Graph, p, idx: int, result) -> None:
        from qdqforge.errors import NumericMismatchError
        from qdqforge.graph.numerics import max_abs_error, run

        error = max_abs_error(run(graph, self.feeds), self._before)
        self.errors[p.name] = error
        if self.threshold is not None and error > self.threshold:
            raise NumericMismatchError(
                f"pass {p.name!r} changed the outputs by {error:.3g} > {self.threshold:.3g}"
            )

    def run_after_failure(self, graph: Graph, p, idx: int, exc: BaseException) -> None:
        return None
