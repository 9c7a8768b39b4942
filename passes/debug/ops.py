"""Op inventory of a model for the debugging CLI: op counts and runtime coverage.

Coverage asks :func:`qdqforge.runtime.registry.resolve` about every (domain, op, opset) the model
uses, so ``qdqforge passes ops`` lists all unsupported ops at once instead of failing at the first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

from qdqforge.runtime.registry import resolve


@dataclass(frozen=True)
class OpCoverage:
    """One row of the coverage table: an op under its domain's opset, how often, supported?"""

    domain: str
    op: str
    opset: int
    count: int
    supported: bool


def op_key(node: onnx.NodeProto) -> str:
    """``Op`` in the default domain, ``domain::Op`` elsewhere (the GraphDiff convention)."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    return f"{domain}::{node.op_type}" if domain else node.op_type


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    """Op key -> number of nodes in the main graph."""
    return Counter(op_key(n) for n in model.graph.node)


def coverage(model: onnx.ModelProto) -> list[OpCoverage]:
    """Every (domain, op) of the main graph with its count and runtime support, sorted."""
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    counts = Counter(
        ("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in model.graph.node
    )
    rows = []
    for (domain, op), count in sorted(counts.items()):
        opset = opsets.get(domain, 1)
        rows.append(OpCoverage(domain, op, opset, count, resolve(op, domain, opset) is not None))
    return rows


def unsupported(rows: list[OpCoverage]) -> list[OpCoverage]:
    """The rows the runtime cannot convert."""
    return [r for r in rows if not r.supported]
