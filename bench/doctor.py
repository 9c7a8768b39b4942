"""Doctor benchmark: per-layer SQNR, skip advice and the fidelity it buys, on real models.

For MiniLM-L6 (sentence embeddings, ``tests/helpers/minilm.py``) and EfficientNet-Lite0
(``bench/models/efficientnet_lite0.py``, scikit-image photos), with the default PTQ config
(``create_quant_config``; ``--dmq ALPHA`` adds DMQ to every layer): ``qdqforge.analyze`` on one
batch, then one table per model: per-layer SQNR (only that layer quantized) min / median / max,
the 5 worst layers with their cause (weight or activation), the layers it would skip, and the
whole model's fidelity vs FP32 (cosine, relative L2, SQNR) with every layer quantized and with
the skips left float. Calibration and measurement use the same batch.

Usage: ``python bench/doctor.py [--models minilm,lite0] [--out DIR] [--dmq 0.5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import qdqforge

WORST = 5


def minilm_case(batch: int):
    from bench.minilm_data import sentences
    from tests.helpers.minilm import encode_batch, load_minilm

    model, tokenizer = load_minilm()
    return model, encode_batch(tokenizer, sentences(batch), length=32)


def lite0_case(batch: int):
    from bench.models.efficientnet_lite0 import load_pretrained
    from bench.photos import photo_set

    return load_pretrained(), photo_set(0, seed=0)[:batch]


CASES = {"minilm": (minilm_case, 16), "lite0": (lite0_case, 8)}


def analyze_case(name: str, workdir: Path, dmq: float | None):
    build, batch = CASES[name]
    model, inputs = build(batch)
    cfg = workdir / f"{name}.json"
    definition = None
    if dmq is not None:
        definition = workdir / f"{name}.cfg"
        definition.write_text(f"common_config {{ dmq_balancer {{ migration_strength: {dmq} }} }}\n")
    qdqforge.create_quant_config(str(cfg), model, inputs, config_defination=definition)
    start = time.perf_counter()
    with torch.no_grad():
        report = qdqforge.analyze(str(cfg), model, inputs)
    return report, time.perf_counter() - start


def fidelity_line(label: str, f) -> str:
    return f"  {label:28s} cosine {f.cosine:.6f}  rel-L2 {f.rel_l2:.4f}  SQNR {f.sqnr_db:6.2f} dB"


def table(name: str, report, seconds: float) -> str:
    sqnr = [lr.quantized.sqnr_db for lr in report.layers]
    lines = [
        f"== {name}: {len(report.layers)} layers analyzed ({len(report.disabled)} disabled by "
        f"the config), {seconds:.1f} s",
        f"  per-layer SQNR dB (only that layer quantized): min {min(sqnr):.2f}  median "
        f"{statistics.median(sqnr):.2f}  max {max(sqnr):.2f}",
        f"  worst {WORST}:",
    ]
    for layer_name in report.ranking[:WORST]:
        lr = report.layer(layer_name)
        w = "-" if lr.weight_only is None else f"{lr.weight_only.sqnr_db:6.2f}"
        lines.append(
            f"    {layer_name:44s} {lr.quantized.sqnr_db:6.2f} dB  (weight-only {w}, "
            f"act-only {lr.activation_only.sqnr_db:6.2f}; {lr.cause}, input outlier ratio "
            f"{lr.channels.outlier_ratio:.1f})"
        )
    skips = ", ".join(report.skip) if report.skip else "none"
    rule = f">= {report.skip_db:g} dB below median"
    lines.append(f"  would skip ({len(report.skip)}, {rule}): {skips}")
    lines.append(fidelity_line("all layers quantized:", report.model))
    lines.append(fidelity_line(f"skipping {len(report.skip)}:", report.with_skips))
    gain = report.with_skips.sqnr_db - report.model.sqnr_db
    lines.append(
        f"  gained: {gain:+.2f} dB SQNR, cosine "
        f"{report.with_skips.cosine - report.model.cosine:+.6f}, rel-L2 "
        f"{report.model.rel_l2:.4f} -> {report.with_skips.rel_l2:.4f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,lite0", help="comma-separated: minilm,lite0")
    parser.add_argument("--out", help="folder for each model's report .html/.json")
    parser.add_argument("--dmq", type=float, help="DMQ migration strength for every layer")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            report, seconds = analyze_case(name, Path(tmp), args.dmq)
            print(table(name, report, seconds), flush=True)
            if args.out:
                report.write_html(Path(args.out) / f"doctor_{name}.html")
                report.write_json(Path(args.out) / f"doctor_{name}.json")


if __name__ == "__main__":
    main()
