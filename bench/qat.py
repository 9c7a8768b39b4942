"""QAT benchmark (issue 5, Proof): prints one table.

  (a) train-step time (forward + backward + SGD step, batch 64) of the qdqforge QAT model divided
      by the FP32 eager step, on the ResNet-style CNN (BN kept) and the transformer test model,
      beside torch.ao's ``prepare_qat_fx`` as an external baseline. Target: <= 1.15x.
      (bench/qat_timing.py)
  (b) digits CNN top-1: FP32; W8A8 and W4A8 PTQ (fake-quant ONNX in onnxruntime's default
      session); W8A8 and W4A8 QAT after 3 epochs, as the torch module and as its saved ONNX files
      in onnxruntime: fake-quant and deploy in the default session ``ort.InferenceSession(path)``,
      QDQ at ``ORT_DISABLE_ALL`` and in the default session. Targets: QAT >= FP32 - 0.1 pt (W8A8),
      >= FP32 - 0.5 pt (W4A8). (bench/qat_digits.py)
  (c) the fused GPU fake-quant kernel vs the reference: needs CUDA and a fused kernel.

Timings are medians of interleaved steps on a fixed thread count; on a shared machine they move
with its load, which the output prints beside them.

Usage: ``python bench/qat.py [--quick] [--threads N] [--out DIR] [--profile]`` (``--profile``
adds torch.profiler's top ops of the QAT step after the table).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.qat_digits import FP32_SEEDS, QAT_SEEDS, digits_rows
from bench.qat_rows import Row, render
from bench.qat_timing import MODELS, profile_top, timing_rows


def gpu_row() -> Row:
    if not torch.cuda.is_available():
        return Row("c", "fused-kernel GPU comparison", "not run (no CUDA device)")
    return Row("c", "fused-kernel GPU comparison", "CUDA present: run bench/kernels.py for it")


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps and epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--out", type=Path, help="keep the ONNX/record files here")
    parser.add_argument("--profile", action="store_true", help="also print the QAT step's top ops")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao deprecation, fx slice warnings: one table only
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    warmup, repeats = (2, 5) if args.quick else (3, 21)
    seeds = QAT_SEEDS[:1] if args.quick else QAT_SEEDS
    fp32_seeds = FP32_SEEDS[:1] if args.quick else FP32_SEEDS
    start, before = time.perf_counter(), load()
    rows = timing_rows(warmup, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows += digits_rows(out, 4 if args.quick else 12, 3, seeds, fp32_seeds)
    rows.append(gpu_row())
    print(render(rows))
    steps = " / ".join(f"{repeats * factor} ({name})" for name, (_, _, factor) in MODELS.items())
    print()
    print(
        f"(a) median [quartiles] of {steps} interleaved steps after {warmup} warm-up, "
        f"torch.set_num_threads({args.threads}), {os.cpu_count()} CPUs shared with other jobs: "
        f"{before} at start, {load()} at end; ratios move with that load."
    )
    print(
        f"(b) mean [min-max] over FP32 models (seeds {fp32_seeds}); QAT and the control also "
        f"over fine-tuning seeds {seeds}."
    )
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.profile:
        for name in MODELS:
            print(profile_top(name))


if __name__ == "__main__":
    main()
