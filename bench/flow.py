"""End-to-end speed of the PTQ and QAT flows vs onnxruntime's quantize_static (issue 18).

For every model (``flow_models.py``: ResNet-18, MobileNetV3-Large, a BERT-base-sized encoder,
EfficientNet-Lite0) and pipeline (``flow_worker.py``: ``ort``, ``ptq``, ``ptq_dmq``, ``qat``),
one fresh process runs the pipeline and reports each stage's wall time and peak RSS; the table
puts them side by side with the ratio to onnxruntime's pipeline (total) and of the calibration
forwards to the plain torch model's forwards of the same batches (and of the observing forwards
alone, all but the last, over an eager batch, with what the last one adds: the scale search and
the record write). The 1-minute load average is recorded before each process (the machine is
shared: compare ratios of one run).

Targets: qdqforge's PTQ flow <= 1.5x onnxruntime's pipeline; calibration forwards <= 1.1x eager.

Usage: ``python bench/flow.py [--models resnet18,bert] [--pipelines ort,ptq] [--threads 2]
[--batches 2] [--batch 8] [--bert-batch 4] [--out bench_out/flow]``; writes ``results.json`` and
``table.md`` there and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.flow_models import MODELS
from bench.flow_table import ROOT, header_lines, table_lines
from bench.flow_worker import PIPELINES


def run_worker(model: str, pipeline: str, args) -> dict:
    batch = args.bert_batch if model == "bert" else args.batch
    command = [sys.executable, "-m", "bench.flow_worker", model, pipeline, str(args.out),
               "--threads", str(args.threads), "--batches", str(args.batches),
               "--batch", str(batch)]  # fmt: skip
    load = os.getloadavg()[0]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        result = {"model": model, "pipeline": pipeline, "stages": [], "note": tail[0][:160]}
    else:
        result = json.loads(lines[-1])
    result.update(load_before=load, load_after=os.getloadavg()[0], batch=batch)
    print(f"{model:12s} {pipeline:8s} {sum(s['seconds'] for s in result['stages']):7.1f} s "
          f"load {load:.1f} {result.get('note', '')}", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--bert-batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "flow")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    header = header_lines(args)
    print("\n".join(header), flush=True)
    results = [
        run_worker(model, pipeline, args)
        for model in args.models.split(",")
        for pipeline in args.pipelines.split(",")
    ]
    lines = [*header, "", *table_lines(results)]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
