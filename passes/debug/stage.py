"""What one pass did, as the pass-debugging tools record it (one ``passlog.jsonl`` line)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from qdqforge.graph.diff.json_codec import to_plain
from qdqforge.graph.diff.model import GraphDiff


@dataclass
class StageReport:
    """One pass of a debug run: the diff against the stage before, time and numeric error.

    Attributes:
        idx: stage number; 0 is the input, pass ``i`` of the pipeline is stage ``i + 1``.
        pass_name: registered name of the pass.
        modified: what the pass reported.
        added, removed, changed: node names from the GraphDiff against the previous stage.
        op_deltas: op -> count change (``+1`` added, ``-1`` removed).
        changed_ops: op -> number of changed nodes.
        max_error: max |Δ| of the graph outputs against the previous stage (None: not checked).
        error_vs_input: max |Δ| of the graph outputs against the input model.
        ms: wall time of the pass itself (the recording around it is excluded).
        error: the failure message when the pass raised.
    """

    idx: int
    pass_name: str
    modified: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    op_deltas: dict[str, int] = field(default_factory=dict)
    changed_ops: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    max_error: float | None = None
    error_vs_input: float | None = None
    ms: float = 0.0
    error: str | None = None

    @classmethod
    def from_diff(cls, idx: int, pass_name: str, diff: GraphDiff, **kw: Any) -> StageReport:
        """The report of a pass whose before/after graphs ``diff`` compares."""
        return cls(
            idx,
            pass_name,
            added=sorted(diff.added_names),
            removed=sorted(diff.removed_names),
            changed=sorted(diff.changed_names),
            op_deltas=dict(sorted(diff.op_deltas().items())),
            changed_ops=dict(sorted(Counter(c.b.op for c in diff.changed).items())),
            **kw,
        )

    def to_log(self) -> dict[str, Any]:
        """The ``passlog.jsonl`` entry (plain JSON types; an infinite error is ``"Infinity"``)."""
        entry = {
            "idx": self.idx,
            "pass": self.pass_name,
            "modified": self.modified,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "ops": self.op_deltas,
            "stats": self.stats,
            "ms": round(self.ms, 3),
            "max_error": self.max_error,
            "error_vs_input": self.error_vs_input,
        }
        if self.error is not None:
            entry["error"] = self.error
        return to_plain(entry)
