"""Pass instruments: per-pass dumps from the environment and onnxruntime numeric checks.

``QDQFORGE_DEBUG_DIR`` switches per-pass dumps on without code changes: every pipeline (and so
every public API call) then writes the same stage files as ``qdqforge passes run``.
"""

from __future__ import annotations

import os
from pathlib import Path

from qdqforge.errors import OutputError
from qdqforge.graph.ir import Graph

DEBUG_DIR_ENV = "QDQFORGE_DEBUG_DIR"


def instruments_from_env(label: str = "pipeline") -> list:
    """Instruments requested through the environment (``QDQFORGE_DEBUG_DIR``).

    Each pipeline run gets its own folder ``<dir>/NN_<label>/`` (NN counts the folders already
    there, so successive API calls keep their order) holding what ``qdqforge passes run`` writes:
    ``00_input.onnx``, ``NN_<pass>.onnx`` with ``.diff.json``/``.diff.html``, ``passlog.jsonl``
    and ``failure/`` on a failing pass.
    """
    from qdqforge.passes.debug.recorder import StageRecorder

    directory = os.environ.get(DEBUG_DIR_ENV)
    if not directory:
        return []
    return [StageRecorder(next_dump_dir(Path(directory), label))]


def next_dump_dir(base: Path, label: str) -> Path:
    """A new ``base/NN_<label>`` folder, NN one more than the folders already in ``base``.

    Raises:
        OutputError: ``base`` is a file, or it (or the new folder) cannot be created; the
            message names ``QDQFORGE_DEBUG_DIR``.
    """
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in label)
    try:
        base.mkdir(parents=True, exist_ok=True)
        index = sum(1 for p in base.iterdir() if p.is_dir())
        while True:
            index += 1
            folder = base / f"{index:02d}_{safe}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:  # another process took this number first
                continue
    except OSError as e:
        reason = "it is a file" if base.is_file() else (e.strerror or str(e))
        raise OutputError(
            f"{DEBUG_DIR_ENV}={os.fspath(base)!r}: cannot create the debug dump folder "
            f"({reason}); name a writable folder or unset it"
        ) from e


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
