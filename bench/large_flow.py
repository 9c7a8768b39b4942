"""Peak memory of the PTQ and QAT flows on a wide MLP, relative to its weights (issue 18).

``python bench/large_flow.py --width 8192 [--depth 2] [--pipeline ptq|qat|both] [--out DIR]``
runs, in this process, the PTQ flow (``create_quant_config``, ``quantize_model``, the
``batch_num`` calibration forwards, ``save_model`` with its verification) and/or the QAT set-up
+ save (``create_quant_retrain_config``, ``create_quant_retrain_model``,
``save_quant_retrain_model``) on :class:`bench.models.wide_mlp.WideMlp`, sampling RSS per
stage (:mod:`bench.rss`), and prints one JSON line: the weight bytes, each stage's seconds and
peak RSS, the RSS after building the model and the process's peak (``VmHWM``) as multiples of
the weights. The user's model is alive throughout (1x); the target is a process peak <= 2x the
weights.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxruntime  # noqa: F401  (loaded before the baseline RSS is read)
import torch

import qdqforge as amct
from bench.flow_worker import Stages, forward_all, run_qat
from bench.models.wide_mlp import WideMlp, wide_mlp_batches, wide_mlp_bytes
from bench.rss import current_rss_bytes, max_rss_bytes

log = logging.getLogger("bench.large_flow")
BATCHES = 2


def run_ptq(model, batches, out: Path, stages: Stages) -> None:

    cfg, record, modified = out / "ptq.json", out / "record.txt", out / "modified.onnx"
    example = batches[0]
    stages.run("ptq config", lambda: amct.create_quant_config(
        str(cfg), model, example, batch_num=len(batches)))  # fmt: skip
    calib = stages.run("quantize_model", lambda: amct.quantize_model(
        str(cfg), str(modified), str(record), model, example))  # fmt: skip
    stages.run("calibration", lambda: forward_all(calib, batches))
    calib = None  # the calibration module is done with; save_model needs only the files
    gc.collect()  # save_model collects it first anyway: its row then starts without it
    stages.run("save_model", lambda: amct.save_model(str(modified), str(record), str(out / "net")))


def measure(width: int, pipeline: str, out: Path, depth: int = 2) -> dict:
    """Run the pipeline(s) on ``WideMlp(width, depth)``; the JSON-ready result (module
    docstring)."""
    weights, base_rss = wide_mlp_bytes(width, depth), current_rss_bytes()
    model, batches = WideMlp(width, depth).eval(), wide_mlp_batches(width, BATCHES)
    model_rss, stages = current_rss_bytes(), Stages()
    if pipeline in ("ptq", "both"):
        run_ptq(model, batches, out, stages)
    if pipeline in ("qat", "both"):
        run_qat(model, batches, out, stages, prefix="qat ")
    for row in stages.rows:
        row["seconds"] = round(row["seconds"], 2)
        row["x_weights"] = round(row.pop("peak_mb") * 2**20 / weights, 2)
        row["above_base_x"] = round(row["x_weights"] - base_rss / weights, 2)
    return {
        "width": width,
        "depth": depth,
        "pipeline": pipeline,
        "weight_bytes": weights,
        "base_mb": round(base_rss / 2**20),
        "model_rss_x": round((model_rss - base_rss) / weights, 2),
        "peak_x": round(max_rss_bytes() / weights, 2),
        "peak_above_base_x": round((max_rss_bytes() - base_rss) / weights, 2),
        "stages": stages.rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--depth", type=int, default=2, help="Linear(width, width) layers")
    parser.add_argument("--pipeline", choices=("ptq", "qat", "both"), default="both")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--external-mb",
        type=float,
        default=None,
        help="save with external data above this size (default: protobuf's 2 GB limit), so a "
        "smaller instance takes the > 2 GB model's path (streamed external data, no save check)",
    )
    args = parser.parse_args(argv)
    if args.external_mb is not None:
        from qdqforge.graph import io

        io.EXTERNAL_THRESHOLD = int(args.external_mb * 2**20)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    os.environ.setdefault("QDQFORGE_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(args.width, args.pipeline, out, args.depth)), flush=True)


if __name__ == "__main__":
    main()
