"""Part (a): sklearn digits CNN, FP32 vs qdqforge W8A8 (without / with DMQ) vs ORT quantize_static.

Metric: test top-1 % and, in brackets, the change vs FP32 in points. Target: drop <= 0.2 pt.
Calibration: the first ``batches x 64`` training images (the same for every method).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.digits import load_split, top1, train
from bench.ptq_flow import PtqSettings
from bench.ptq_rows import Row, Score, Task, ort_row, qdqforge_row, reference_row

TARGET_DROP = 0.2
DMQ_ALPHA = 0.5


def digits_task(labels: torch.Tensor, x_test: torch.Tensor, fp32: np.ndarray) -> Task:
    """Scores top-1 on ``x_test`` against ``labels``; value = drop vs FP32 in points."""
    base = top1(fp32, labels)

    def score(logits: np.ndarray) -> Score:
        acc = top1(logits, labels)
        return Score(f"{acc:.2f} ({acc - base:+.2f})", base - acc)

    return Task("digits", list(x_test.split(256)), score, lambda drop: drop <= TARGET_DROP)


def run_digits(
    workdir: Path, epochs: int = 15, batches: int = 4, with_ort: bool = True
) -> list[Row]:
    """All digits rows: FP32, qdqforge W8A8 (8-bit and 7-bit weights) and with DMQ, ORT's
    quantize_static.

    Args:
        workdir: folder for every method's files.
        epochs: FP32 training epochs (15 takes ~3 s).
        batches: calibration batches of 64 (``batch_num``).
        with_ort: include the onnxruntime baseline.

    Returns:
        ``list[Row]``.
    """
    x_train, y_train, x_test, y_test = load_split()
    model = train(x_train, y_train, epochs)
    with torch.no_grad():
        fp32 = model(x_test).numpy()
    task = digits_task(y_test, x_test, fp32)
    calib = list(x_train[: 64 * batches].split(64))
    rows = [reference_row(task, fp32, f"{len(y_test)} test images, trained {epochs} epochs")]
    rows.append(qdqforge_row(task, "qdqforge W8A8", model, calib, workdir / "plain", PtqSettings()))
    reduced = PtqSettings(weight_reduce_range=True)
    rows.append(qdqforge_row(task, "qdqforge W8A8 weight_reduce_range", model, calib,
                             workdir / "reduced", reduced))  # fmt: skip
    dmq = PtqSettings(alpha=DMQ_ALPHA)
    rows.append(qdqforge_row(task, f"qdqforge W8A8 DMQ a={DMQ_ALPHA}", model, calib,
                             workdir / "dmq", dmq))  # fmt: skip
    if with_ort:
        rows.append(ort_row(task, "ORT quantize_static", model, calib, workdir / "ort"))
    return rows
