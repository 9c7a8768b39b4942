"""The save-time check's report: ``<save_path>_verify.json``, its log line, its error text.

``status`` is ``passed``, ``passed_with_runtime_warnings`` (the models are right; a default
onnxruntime session computes the QDQ or deploy model differently on this machine, see
``runtime_warnings``), ``failed`` (a VerificationError was raised) or ``unverified`` (the check
did not run to the end: it is written before the models are replaced and stays until a
verification finishes, so a crash or Ctrl-C never leaves an old ``passed`` beside new models).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from qdqforge.front.save.verify_bias import BiasGridIssue
from qdqforge.front.save.verify_budget import Comparison, VerifyBudget, Violation
from qdqforge.front.save.verify_runtime import RuntimeIssue, cpu_has_vnni
from qdqforge.graph import io


@dataclass
class Verdict:
    """Everything one verification found."""

    comparisons: list[Comparison]
    violation: Violation | None
    runtime_warnings: list[RuntimeIssue] = field(default_factory=list)
    reason: str | None = None
    bias_warnings: list[BiasGridIssue] = field(default_factory=list)

    @classmethod
    def unverified(cls, reason: str) -> Verdict:
        return cls([], None, [], reason)

    @property
    def status(self) -> str:
        if self.reason is not None:
            return "unverified"
        if self.violation is not None:
            return "failed"
        return "passed_with_runtime_warnings" if self.runtime_warnings else "passed"


def write_unverified(path: Path, reason: str) -> None:
    """Mark ``path`` as not (yet) verified."""
    write_report(path, Verdict.unverified(reason), None)


def write_report(path: Path, verdict: Verdict, budget, arrays=(), notes=None) -> None:
    """``<save_path>_verify.json``: status, cause of a failure or warning, per-tensor data."""
    tree = {
        "status": verdict.status,
        "passed": None if verdict.reason else verdict.violation is None,
        "reason": verdict.reason,
        "first_diverging": dataclasses.asdict(verdict.violation) if verdict.violation else None,
        "runtime_warnings": [dataclasses.asdict(w) for w in verdict.runtime_warnings],
        "bias_grid_warnings": [dataclasses.asdict(w) for w in verdict.bias_warnings],
        **(notes or {}),
        "machine": {
            "onnxruntime": ort.__version__,
            "cpu": platform.machine(),
            "vnni": cpu_has_vnni(),
        },
        "budget": dataclasses.asdict(budget) if isinstance(budget, VerifyBudget) else None,
        "inputs": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in arrays],
        "comparisons": {c.name: _comparison(c) for c in verdict.comparisons},
    }
    io.atomic_write_text(path, json.dumps(tree, indent=1) + "\n")


def _comparison(c: Comparison) -> dict:
    return {
        "stage": c.stage,
        "kind": c.kind,
        "differ": c.differ,
        "total": c.total,
        "max_steps": c.max_steps,
        "tensors": [dataclasses.asdict(t) for t in c.tensors],
        "outputs": [dataclasses.asdict(o) for o in c.outputs],
        "kernels": [dataclasses.asdict(k) for k in c.kernels],
        "free_running": dataclasses.asdict(c.free_running) if c.free_running else None,
        "not_compared": c.not_compared,
    }


def summary(report: Path, verdict: Verdict) -> str:
    """The one log line of a verification."""
    parts = [
        f"{c.name}: {c.differ}/{c.total} differ (max {c.max_steps} steps)"
        + (f", {len(c.kernels)} kernels" if c.kernels else "")
        for c in verdict.comparisons
    ]
    return f"verify {report.name}: " + "; ".join(parts) + f" -> {verdict.status}"


def message(violation: Violation, report: Path) -> str:
    """The VerificationError text: which pair disagrees where, and where to look."""
    if "_vs_" not in violation.comparison:  # a check of one model (verify_bias.misplaced_bias)
        return (
            f"the qdq model's int32 bias '{violation.tensor}' is wrong: {violation.reason}. It "
            f"is checked against the fake-quant model's float bias. The models are "
            f"written; details are in {report} (status 'failed'). Pass verify=False to save "
            f"without this check"
        )
    a, b = violation.comparison.split("_vs_")
    return (
        f"{a} and {b} disagree: '{violation.tensor}' {violation.reason}. Each layer was "
        f"computed from the same quantized inputs, so the fault lies in the layers between the "
        f"quantized tensors before it and it. The models are written; per-tensor details are in "
        f"{report} (status 'failed'). Pass verify=False to save without this check"
    )
