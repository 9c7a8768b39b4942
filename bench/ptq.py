"""PTQ benchmark: qdqforge W8A8 (with and without DMQ) vs onnxruntime's quantize_static.

Prints one comparison table (then its numbered notes) for:
  (a) a digits CNN trained here in seconds: top-1 vs FP32 (target: drop <= 0.2 pt);
  (b) MiniLM-L6 sentence embeddings: cosine vs FP32, DMQ alpha sweep (target: >= 0.995);
  (c) EfficientNet-Lite0 on scikit-image photos and crops: logits rel-L2, top-1/top-5
      agreement (target: rel-L2 <= 0.05), with an error attribution;
  IFMR memory: calibration peak RSS for 32 batches vs 1 (target: <= 1.2x).
Columns are described in bench/README.md ("ORT default": ``ort.InferenceSession(path)``, no
options; ``ORT_DISABLE_ALL``: graph optimizations off, the QDQ simulation).

Usage: ``python bench/ptq.py [--parts digits,minilm,lite0,memory] [--out bench_out/ptq]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ptq_rows import Row

PARTS = ("digits", "minilm", "lite0", "memory")
HEADER = (
    "task", "method", "fake-quant ORT default", "QDQ ORT_DISABLE_ALL", "QDQ ORT default",
    "deploy ORT default", "target", "time s", "+RSS MB", "note",
)  # fmt: skip
NOTE_WIDTH = 48


def run_part(name: str, out: Path) -> list[Row]:
    """The rows of one part (imports lazily: the parts need different optional packages)."""
    if name == "digits":
        from bench.ptq_digits import run_digits

        return run_digits(out / "digits")
    if name == "minilm":
        from bench.ptq_minilm import run_minilm

        return run_minilm(out / "minilm")
    if name == "lite0":
        from bench.ptq_lite0 import run_lite0

        return run_lite0(out / "lite0")
    from bench.ifmr_memory import memory_rows

    return memory_rows()


def cells(rows: list[Row]) -> tuple[list[list[str]], list[str]]:
    """Table cells; notes longer than ``NOTE_WIDTH`` become numbered footnotes."""
    table, notes = [], []
    for r in rows:
        note = r.note
        if len(note) > NOTE_WIDTH:
            notes.append(note)
            note = f"[{len(notes)}]"
        table.append([r.task, r.method, r.fake, r.sim, r.ort_all, r.deploy, r.target,
                      r.seconds, r.rss_mb, note])  # fmt: skip
    return table, notes


def print_table(rows: list[Row]) -> None:
    """One aligned text table, then its footnotes."""
    table, notes = cells(rows)
    widths = [max(len(str(r[i])) for r in [HEADER, *table]) for i in range(len(HEADER))]
    for row in [HEADER, ["-" * w for w in widths], *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for i, note in enumerate(notes, start=1):
        print(f"[{i}] {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path("bench_out/ptq"), help="work folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start, rows = time.perf_counter(), []
    for name in args.parts.split(","):
        rows += run_part(name.strip(), args.out)
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
