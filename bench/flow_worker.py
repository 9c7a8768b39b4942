"""One pipeline of ``bench/flow.py`` in a fresh process: stage times and peak RSS, as JSON.

``python -m bench.flow_worker MODEL PIPELINE OUTDIR [--threads N --batches B --batch S]``
prints one JSON line: ``{"model", "pipeline", "stages": [{"name", "seconds", "peak_mb"}],
"eager_s", "note"}``. Pipelines:

* ``ptq`` / ``ptq_dmq``: the AMCT flow through qdqforge's public API, stages ``config``
  (``create_quant_config`` with a generated ``.cfg``), ``dmq`` (``quantize_preprocess`` and its
  forwards), ``quantize_model``, ``calibration`` (the ``batch_num`` observing forwards, the
  scale search included), ``save`` (``save_model`` with its verification). ``eager_s`` /
  ``eager_cpu_s``: the plain torch model's forwards over the same batches, wall and process CPU
  time (median of two passes before and two after calibration, after a warm-up forward);
  ``calib_cpu_s``: the calibration stage's process CPU time; ``calib_forwards_s``: each
  calibration forward's wall time (the last one also runs the scale search and writes the
  record).
* ``qat``: ``create_quant_retrain_config``, ``create_quant_retrain_model``, the ``batch_num``
  clip-initialising forwards (train mode, no gradients) and ``save_quant_retrain_model``.
* ``ort``: onnxruntime's own pipeline: ``torch.onnx.export`` (torch's defaults), ORT's
  ``quant_pre_process``, ``quantize_static`` (QDQ, per-channel weights, MinMax) calibrated on
  the same batches.

Peak RSS is this process's resident memory sampled every 5 ms during the stage (absolute MB).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.flow_models import build_model, calibration_batches
from bench.rss import PeakRss

log = logging.getLogger("bench.flow")
PIPELINES = ("ort", "ptq", "ptq_dmq", "qat")
DMQ_ALPHA = 0.5


class Stages:
    """Times and peak RSS of named stages."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def run(self, name: str, action):
        start = time.perf_counter()
        with PeakRss() as memory:
            result = action()
        seconds = time.perf_counter() - start
        self.rows.append({"name": name, "seconds": seconds, "peak_mb": memory.peak / 2**20})
        log.info("%s: %.2f s, peak %.0f MB", name, seconds, memory.peak / 2**20)
        return result


def forward_all(module, batches: list) -> None:
    with torch.no_grad():
        for x in batches:
            module(*x) if isinstance(x, tuple) else module(x)


def timed_forwards(module, batches: list) -> list[float]:
    """Wall seconds of each forward (the last calibration forward also searches the scales and
    writes the record)."""
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        forward_all(module, [batch])
        seconds.append(time.perf_counter() - start)
    return seconds


def timed(action) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``action()``."""
    start, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - start, time.process_time() - cpu


def run_ptq(model, batches: list, out: Path, stages: Stages, dmq: bool) -> dict:
    import qdqforge as amct
    from bench.ptq_flow import PtqSettings, cfg_text

    cfg, record, modified = out / "config.json", out / "record.txt", out / "modified.onnx"
    definition = out / "quant.cfg"
    definition.write_text(cfg_text(PtqSettings(alpha=DMQ_ALPHA if dmq else None), len(batches)))
    example = batches[0]
    forward_all(model, batches[:1])  # warm-up of the eager model
    eager = [timed(lambda: forward_all(model, batches)) for _ in range(2)]
    stages.run("config", lambda: amct.create_quant_config(
        str(cfg), model, example, config_defination=str(definition)))  # fmt: skip
    if dmq:
        stages.run("dmq", lambda: forward_all(
            amct.quantize_preprocess(str(cfg), str(record), model, example), batches))  # fmt: skip
    calib = stages.run("quantize_model", lambda: amct.quantize_model(
        str(cfg), str(modified), str(record), model, example))  # fmt: skip
    cpu, each = time.process_time(), []
    stages.run("calibration", lambda: each.extend(timed_forwards(calib, batches)))
    calib_cpu = time.process_time() - cpu
    eager += [timed(lambda: forward_all(model, batches)) for _ in range(2)]
    stages.run("save", lambda: amct.save_model(str(modified), str(record), str(out / "net")))
    return {
        "eager_s": statistics.median(wall for wall, _ in eager),
        "eager_cpu_s": statistics.median(cpu for _, cpu in eager),
        "calib_cpu_s": calib_cpu,
        "calib_forwards_s": each,
    }


def run_qat(model, batches: list, out: Path, stages: Stages, prefix: str = "") -> dict:
    """The QAT set-up + save as stages ``<prefix>config``, ``create``, ``init_forwards``,
    ``save`` (also ``bench/large_flow.py``'s QAT part)."""
    import qdqforge as amct

    cfg, record, example = out / "qat.json", out / "qat_record.txt", batches[0]
    stages.run(f"{prefix}config", lambda: amct.create_quant_retrain_config(
        str(cfg), model, example))  # fmt: skip
    qat = stages.run(f"{prefix}create", lambda: amct.create_quant_retrain_model(
        str(cfg), model, str(record), example))  # fmt: skip
    stages.run(f"{prefix}init_forwards", lambda: forward_all(qat.train(), batches))
    stages.run(f"{prefix}save", lambda: amct.save_quant_retrain_model(
        str(cfg), qat.eval(), str(record), str(out / "qat"), example))  # fmt: skip
    return {}


def run_ort(model, batches: list, out: Path, stages: Stages) -> dict:
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from bench.ort_tools import _Reader, session

    fp32, prep, quantized = out / "fp32.onnx", out / "prep.onnx", out / "ort_qdq.onnx"
    example = batches[0] if isinstance(batches[0], tuple) else (batches[0],)
    names = [f"input_{i}" for i in range(len(example))]
    stages.run("export", lambda: torch.onnx.export(model, example, str(fp32), input_names=names))
    note = ""
    try:
        stages.run("pre_process", lambda: quant_pre_process(str(fp32), str(prep)))
    except Exception as e:  # ORT's symbolic shape inference fails on some graphs
        note = f"quant_pre_process without symbolic shapes ({type(e).__name__})"
        stages.run("pre_process", lambda: quant_pre_process(
            str(fp32), str(prep), skip_symbolic_shape=True))  # fmt: skip
    inputs = [i.name for i in session(prep).get_inputs()]
    stages.run("quantize_static", lambda: quantize_static(
        str(prep), str(quantized), _Reader(inputs, batches), quant_format=QuantFormat.QDQ,
        per_channel=True))  # fmt: skip
    return {"note": note}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("pipeline", choices=PIPELINES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    os.environ.setdefault("QDQFORGE_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    out = args.out / args.model / args.pipeline
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.model)
    batches = calibration_batches(args.model, args.batches, args.batch)
    stages, result = Stages(), {"model": args.model, "pipeline": args.pipeline}
    try:
        if args.pipeline == "ort":
            result |= run_ort(model, batches, out, stages)
        elif args.pipeline == "qat":
            result |= run_qat(model, batches, out, stages)
        else:
            result |= run_ptq(model, batches, out, stages, dmq=args.pipeline == "ptq_dmq")
    except Exception as e:  # reported in the table; the other pipelines still run
        log.exception("%s %s failed", args.model, args.pipeline)
        result["note"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    result["exports"] = _exports()
    print(json.dumps({**result, "stages": stages.rows}))


def _exports() -> int | None:
    """Exports qdqforge ran in this process (export-cache misses and uncached calls)."""
    if "qdqforge.front.export.cache" not in sys.modules:
        return None
    stats = sys.modules["qdqforge.front.export.cache"].CACHE.stats
    return stats.misses + stats.uncached


if __name__ == "__main__":
    main()
