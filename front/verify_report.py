"""The save-time check's report: ``<save_path>_verify.json``, its log line, its error text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from qdqforge.front.verify_budget import Comparison, Violation
from qdqforge.graph import io


def write_report(path: Path, comparisons, violation, budget, arrays, notes: dict) -> None:
    """``<save_path>_verify.json``: verdict, the saver's notes, budget, inputs, per-tensor data."""
    tree = {
        "passed": violation is None,
        "first_diverging": dataclasses.asdict(violation) if violation else None,
        **notes,
        "budget": dataclasses.asdict(budget),
        "inputs": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in arrays],
        "comparisons": {
            c.name: {
                "differ": c.differ,
                "total": c.total,
                "max_steps": c.max_steps,
                "tensors": [dataclasses.asdict(t) for t in c.tensors],
                "outputs": [dataclasses.asdict(o) for o in c.outputs],
                "not_compared": c.not_compared,
            }
            for c in comparisons
        },
    }
    io.atomic_write_text(path, json.dumps(tree, indent=1) + "\n")


def summary(report: Path, comparisons: list[Comparison], violation: Violation | None) -> str:
    """The one log line of a verification."""
    parts = [
        f"{c.name}: {c.differ}/{c.total} integers differ (max {c.max_steps} steps), output "
        f"rel err {max((o.max_rel for o in c.outputs), default=0.0):.2g}"
        for c in comparisons
    ]
    verdict = "passed" if violation is None else f"FAILED at '{violation.tensor}'"
    return f"verify {report.name}: " + "; ".join(parts) + f" -> {verdict}"


def message(violation: Violation, report: Path) -> str:
    """The VerificationError text: which pair disagrees where, and where to look."""
    a, b = violation.comparison.split("_vs_")
    return (
        f"{a} and {b} disagree: tensor '{violation.tensor}' {violation.reason}; it is the first "
        f"diverging tensor in topological order, so the fault lies between the quantized tensor "
        f"before it and it. The models are written; per-tensor details are in {report}. "
        "Pass verify=False to save without this check"
    )
