"""Round-trip benchmark: export, rewrite (canonicalize + fold_bn), reimport, train-step ratio.

Prints one table per run:
  * per test model: export / rewrite / reimport seconds, node count, and the forward+backward
    step time of the reimported module divided by the original's (median of 20 interleaved steps
    after warm-up, same process). Target: ratio <= 1.02.
  * synthetic deep graphs (~1k, 5k, 10k, 20k nodes): rewrite + reimport time per node (must stay
    flat), and the graph diff of the rewrite (``graph.diff``) with its HTML page and JSON round trip
    (targets at 10k nodes: diff < 8 s, page + JSON < 5 s on 2 cores; before issue 17 they were
    asserted in tests/graph/diff/test_diff_scale.py, which now checks only what the diff holds).

Usage: ``python bench/roundtrip.py [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import qdqforge
from bench.synthetic import deep_conv_model
from qdqforge.graph.diff.graph_diff import GraphDiff, diff_graphs
from qdqforge.graph.diff.html import render_diff_html
from qdqforge.passes.infra.pipeline import rewrite
from tests.helpers.torch_models import build

BATCHES = {
    "resnet": (64, 3, 32, 32),
    "mobilenet": (64, 3, 64, 64),
    "transformer": (64, 16, 12),
    "hand_attention": (64, 16, 12),
}


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def step_time(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    return time.perf_counter() - start


def step_ratio(original, reimported, x, repeats: int) -> tuple[float, float]:
    for _ in range(3):
        step_time(original, x), step_time(reimported, x)
    a, b = [], []
    for _ in range(repeats):
        a.append(step_time(original, x))
        b.append(step_time(reimported, x))
    return statistics.median(a), statistics.median(b)


def model_row(name: str, repeats: int) -> list:
    model, _ = build(name)
    x = torch.randn(*BATCHES[name])
    proto, t_export = timed(lambda: qdqforge.export(model, (x,)))
    folded, t_rewrite = timed(lambda: rewrite(proto))
    reimported, t_reimport = timed(lambda: qdqforge.reimport(proto))
    t_orig, t_new = step_ratio(copy.deepcopy(model).train(), reimported.train(), x, repeats)
    return [
        name,
        f"{t_export:.2f}",
        f"{t_rewrite:.3f}",
        f"{t_reimport:.3f}",
        f"{len(proto.graph.node)}->{len(folded.graph.node)}",
        f"{t_orig * 1e3:.1f}",
        f"{t_new * 1e3:.1f}",
        f"{t_new / t_orig:.3f}",
    ]


def synthetic_row(blocks: int) -> list:
    proto = deep_conv_model(blocks)
    nodes = len(proto.graph.node)
    folded, t_rewrite = timed(lambda: rewrite(proto))
    _, t_reimport = timed(lambda: qdqforge.reimport(folded))
    per_node = (t_rewrite + t_reimport) / nodes * 1e6
    diff, t_diff = timed(lambda: diff_graphs(proto, folded))
    _, t_page = timed(lambda: (render_diff_html(diff), GraphDiff.from_json(diff.to_json())))
    return [
        f"deep-{nodes}",
        f"{t_rewrite:.2f}",
        f"{t_reimport:.2f}",
        f"{per_node:.1f}",
        f"{t_diff:.2f}",
        f"{t_page:.2f}",
    ]


def print_table(header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, small graphs only")
    args = parser.parse_args()
    repeats = 5 if args.quick else 20
    rows = [model_row(name, repeats) for name in BATCHES]
    print_table(
        ["model", "export s", "rewrite s", "reimport s", "nodes", "orig ms", "reimp ms", "ratio"],
        rows,
    )
    print()
    sizes = (150, 750) if args.quick else (150, 750, 1430, 3000)
    print_table(
        ["graph", "rewrite s", "reimport s", "us/node", "diff s", "page+json s"],
        [synthetic_row(b) for b in sizes],
    )


if __name__ == "__main__":
    main()
