"""The table of ``bench/flow.py``: one row per (model, pipeline), stages in one cell."""

from __future__ import annotations

import datetime
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHORT = {"quantize_model": "qm", "calibration": "calib", "quantize_static": "qs",
         "pre_process": "prep", "init_forwards": "init", "create": "create"}  # fmt: skip
PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "transformers", "numpy")


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return "?"


def header_lines(args) -> list[str]:
    """Date, machine, load (``uptime``), versions and settings."""
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    return [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"qdqforge {_run(['git', 'rev-parse', '--short', 'HEAD'])}",
        f"machine: {_run(['nproc'])} cores ({cpu}); uptime: {_run(['uptime'])}",
        f"python {platform.python_version()}, {versions}",
        f"settings: {args.threads} torch threads, {args.batches} calibration batches of "
        f"{args.batch} images (BERT: {args.bert_batch} x 128 tokens)",
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def table_lines(results: list[dict]) -> list[str]:
    """Markdown rows; ``vs ORT`` divides a flow's total by the same model's ``ort`` total."""
    totals = {(r["model"], r["pipeline"]): _total(r) for r in results}
    lines = [
        "| model | pipeline | stages (s) | total s | vs ORT | calib / eager | peak RSS MB "
        "| exports | load | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ort = totals.get((r["model"], "ort"))
        total = totals[(r["model"], r["pipeline"])]
        ratio = f"{total / ort:.2f}x" if ort and total and r["pipeline"] != "ort" else ""
        stages = " / ".join(f"{SHORT.get(s['name'], s['name'])} {s['seconds']:.1f}"
                            for s in r["stages"])  # fmt: skip
        peak = max((s["peak_mb"] for s in r["stages"]), default=0.0)
        load = f"{r['load_before']:.1f}-{r['load_after']:.1f}"
        lines.append(
            f"| {r['model']} | {r['pipeline']} | {stages} | {total:.1f} | {ratio} | "
            f"{_calib_ratio(r)} | {peak:.0f} | {_or_blank(r.get('exports'))} | {load} | "
            f"{r.get('note', '')} |"
        )
    return lines


def _total(result: dict) -> float:
    return sum(stage["seconds"] for stage in result["stages"])


def _calib_ratio(result: dict) -> str:
    calib = next((s["seconds"] for s in result["stages"] if s["name"] == "calibration"), None)
    eager = result.get("eager_s")
    if not (calib and eager):
        return ""
    cpu, eager_cpu = result.get("calib_cpu_s"), result.get("eager_cpu_s")
    cpu_ratio = f", CPU {cpu / eager_cpu:.2f}x" if cpu and eager_cpu else ""
    return f"{calib / eager:.2f}x ({calib:.1f}/{eager:.1f}){cpu_ratio}{_observing(result)}"


def _observing(result: dict) -> str:
    """The forwards before the last over the eager forward of a batch, and what the last one
    spends beyond them (the scale search and the record write)."""
    each = result.get("calib_forwards_s") or []
    if len(each) < 2:
        return ""
    per_batch = result["eager_s"] / len(each)
    observing = sum(each[:-1]) / len(each[:-1])
    return f"; observing {observing / per_batch:.2f}x, end +{each[-1] - observing:.2f} s"


def _or_blank(value) -> str:
    return "" if value is None else str(value)
