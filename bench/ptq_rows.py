"""One table row per quantization method: run it, evaluate its ONNX models, judge the target.

A :class:`Task` knows its evaluation batches, the FP32 reference and how to score outputs; the
row functions run qdqforge's flow (:mod:`bench.ptq_flow`) or ORT's ``quantize_static``
(:mod:`bench.ort_tools`) and fill the result columns, each naming its model and session:

* ``fake``: qdqforge's ``<save>_fake_quant_model.onnx`` in ORT's default session
  (``ort.InferenceSession(path)``, no options): the torch module's arithmetic in float ops,
  nothing fused into int8 kernels (qdqforge's target is judged on it);
* ``sim``: the QDQ model (qdqforge's ``<save>_qdq_model.onnx``, or ORT's output) at
  ``ORT_DISABLE_ALL``: Q/DQ run as float ops, the quantization simulation with the int32 bias
  (ORT's target is judged on it);
* ``ort_all``: the same QDQ model in ORT's default session, where ORT fuses QDQ into int8 kernels
  (u8 x s8 pairs summed into int16 with saturation on this CPU without VNNI);
* ``deploy``: qdqforge's ``<save>_deploy_model.onnx`` in ORT's default session, when written.

A product error becomes the row's note (the table shows every method, failed or not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.ort_tools import LEVELS, ort_quantize_static, run_onnx
from bench.ptq_flow import PtqSettings, run_ptq
from bench.rss import PeakRss, Stopwatch
from qdqforge.errors import QdqforgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    """A metric cell: its text and the number the target is judged on."""

    text: str
    value: float


@dataclass(frozen=True)
class Task:
    """What a part evaluates: batches, how to score outputs, and the target on ``value``."""

    name: str
    eval_batches: list
    score: Callable[[np.ndarray], Score]
    meets: Callable[[float], bool]


@dataclass
class Row:
    """One line of the comparison table (``"-"`` where a column does not apply)."""

    task: str
    method: str
    fake: str = "-"
    sim: str = "-"
    ort_all: str = "-"
    deploy: str = "-"
    target: str = ""
    seconds: str = "-"
    rss_mb: str = "-"
    note: str = ""


def _evaluate(task: Task, path: Path, level: str) -> Score:
    return task.score(run_onnx(path, task.eval_batches, level))


def _error_row(task: Task, method: str, error: Exception) -> Row:
    log.warning("%s / %s failed: %s", task.name, method, error)
    return Row(task.name, method, note=f"{type(error).__name__}: {error}")


def qdqforge_row(task: Task, method: str, model, calib: list, workdir: Path, settings: PtqSettings):
    """Run qdqforge's PTQ flow with ``settings`` and evaluate what it saved."""
    try:
        run = run_ptq(model, calib, workdir, settings)
    except QdqforgeError as e:
        return _error_row(task, method, e)
    fake = _evaluate(task, run.fake_quant, "default")
    qdq = {level: _evaluate(task, run.qdq, level).text if run.qdq else "-" for level in LEVELS}
    deploy = _evaluate(task, run.deploy, "default").text if run.deploy else "-"
    return Row(
        task.name, method, fake.text, qdq["disabled"], qdq["default"], deploy,
        "met" if task.meets(fake.value) else "missed",
        f"{run.seconds:.1f}", f"{run.extra_rss_mb:.0f}", run.note,
    )  # fmt: skip


def ort_row(task: Task, method: str, model, calib: list, workdir: Path, op_types=None) -> Row:
    """Run onnxruntime's ``quantize_static`` baseline and evaluate its QDQ model."""
    try:
        with Stopwatch() as clock, PeakRss() as memory:
            path = ort_quantize_static(model, calib, workdir, op_types)
    except Exception as e:  # ORT's quantizer fails in its own ways (e.g. non-finite ranges)
        return _error_row(task, method, e)
    sim = _evaluate(task, path, "disabled")
    return Row(
        task.name, method, "-", sim.text, _evaluate(task, path, "default").text, "-",
        "met" if task.meets(sim.value) else "missed",
        f"{clock.seconds:.1f}", f"{memory.extra_mb:.0f}",
    )  # fmt: skip


def reference_row(task: Task, reference: np.ndarray, note: str = "") -> Row:
    """The FP32 row: the reference scored against itself (or the labels)."""
    return Row(task.name, "FP32 (torch)", task.score(reference).text, note=note)
