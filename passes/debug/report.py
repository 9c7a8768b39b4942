"""Text the pass-debugging CLI prints: stage lines, op-count and coverage tables, bisect verdicts.

Pure functions from results to strings; the CLI decides where they go. Op and node names come
from the model file: every one is escaped (:func:`qdqforge.safe_text.shown`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from qdqforge.passes.debug.ops import OpCoverage
from qdqforge.passes.debug.stage import StageReport
from qdqforge.safe_text import shown


def stage_line(stage: StageReport) -> str:
    """``[02] fold_bn  modified  -1 BatchNormalization ~1 Conv  0.8 ms  max|Δ| 2.1e-06``."""
    if stage.error is not None:
        return f"[{stage.idx:02d}] {stage.pass_name}  FAILED  {shown(stage.error)}"
    parts = [f"[{stage.idx:02d}] {stage.pass_name}", "modified" if stage.modified else "unchanged"]
    deltas = [f"{d:+d} {shown(op)}" for op, d in stage.op_deltas.items()]
    deltas += [f"~{n} {shown(op)}" for op, n in stage.changed_ops.items()]
    if deltas:
        parts.append(" ".join(deltas))
    parts.append(f"{stage.ms:.1f} ms")
    if stage.max_error is not None:
        parts.append(f"max|Δ| {stage.max_error:.2g}")
    return "  ".join(parts)


def op_table(before: Counter[str], after: Counter[str]) -> str:
    """Op counts before and after with the delta, one row per op (OnnxSlim's summary)."""
    ops = sorted(set(before) | set(after))
    rows = [("op", "before", "after", "delta")]
    for op in ops:
        delta = after[op] - before[op]
        rows.append((op, str(before[op]), str(after[op]), f"{delta:+d}" if delta else ""))
    rows.append(("total", str(sum(before.values())), str(sum(after.values())), ""))
    return _table(rows)


def coverage_table(rows: Sequence[OpCoverage]) -> str:
    """The runtime coverage rows as text columns."""
    header = ("domain", "op", "opset", "count", "supported")
    body = [
        (r.domain or "ai.onnx", r.op, str(r.opset), str(r.count), _yes(r.supported)) for r in rows
    ]
    return _table([header, *body])


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _table(rows: Sequence[Sequence[str]]) -> str:
    rows = [[shown(cell) for cell in row] for row in rows]  # op/node names come from the file
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
