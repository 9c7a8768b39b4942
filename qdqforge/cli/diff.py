"""``qdqforge diff A.onnx B.onnx -o diff.html [--inputs X.npz] [--json out.json]``.

Writes the offline HTML page of :func:`qdqforge.graph.diff.graph_diff.diff_graphs` and prints a
summary: nodes added/removed/changed, op deltas and, with inputs, the first diverging tensor.
"""

from __future__ import annotations

import argparse

from qdqforge.cli.say import say
from qdqforge.graph import io
from qdqforge.graph.diff.graph_diff import diff_graphs, write_diff_html
from qdqforge.graph.path_roles import check_roles
from qdqforge.passes.debug.inputs import load_feeds
from qdqforge.safe_text import shown


def register(subparsers) -> None:
    """Add ``diff``."""
    parser = subparsers.add_parser("diff", help="compare two ONNX models (offline HTML page)")
    parser.add_argument("a", help="model before (ONNX file)")
    parser.add_argument("b", help="model after (ONNX file)")
    parser.add_argument("-o", "--output", required=True, help="HTML file to write")
    parser.add_argument("--inputs", help=".npz inputs: adds per-tensor numeric errors")
    parser.add_argument("--json", help="also write the GraphDiff as JSON here")
    parser.set_defaults(func=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    """Diff ``args.a`` against ``args.b`` and write the page (and JSON)."""
    check_roles(
        "diff",
        inputs={"A": args.a, "B": args.b, "--inputs": args.inputs},
        outputs={"--output": args.output, "--json": args.json},
    )
    feeds = load_feeds(args.inputs, io.load_proto(args.a)) if args.inputs else None
    diff = diff_graphs(args.a, args.b, inputs=feeds)
    write_diff_html(diff, args.output)
    if args.json:
        io.atomic_write_text(args.json, diff.to_json(indent=1))
    say(f"{shown(diff.a.name)} -> {shown(diff.b.name)}: {summary(diff)}")
    if diff.numerics is not None:
        first = diff.numerics.first_divergence
        say(f"first diverging tensor: {shown(first)}" if first else "no tensor diverges")
    say(f"wrote {shown(args.output)}")
    return 0


def summary(diff) -> str:
    """``+0 -1 ~1 nodes, 2 unchanged; ops: -1 BatchNormalization``."""
    text = f"+{len(diff.added)} -{len(diff.removed)} ~{len(diff.changed)} nodes, "
    text += f"{diff.unchanged} unchanged"
    deltas = " ".join(f"{d:+d} {shown(op)}" for op, d in sorted(diff.op_deltas().items()))
    return f"{text}; ops: {deltas}" if deltas else text
