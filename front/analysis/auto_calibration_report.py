"""``<save_dir>_auto_calibration.json``: what auto-calibration tried and what it rolled back.

Keys: ``strategy``, ``sensitivity``, ``original_metric``, ``sensitivity_ranking`` (most
sensitive first: ``layer`` and ``cosine_similarity``), ``trials`` (in the order run: rolled-back
layers, ``metric``, ``loss``, ``passed``), ``passed``, ``rolled_back`` and ``final_metric``
(of the chosen trial), ``files``. Metrics are the evaluator's values; those JSON cannot hold
(tensors, objects) are written as numbers when they have ``item()``, else as text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qdqforge.front.analysis.auto_calibration_trial import TrialResult
from qdqforge.front.analysis.layer_sensitivity import rank_by_cosine
from qdqforge.graph.io import atomic_write_text


def prefixed(save_dir: str | os.PathLike, name: str) -> Path:
    """``<save_dir>_<name>``; a ``dir/`` save_dir means ``dir/<name>`` (AMCT's prefixes)."""
    text = os.fspath(save_dir)
    if text.endswith(("/", os.sep)):
        return Path(text) / name
    return Path(f"{text}_{name}")


def write_report(
    path: Path,
    *,
    strategy: str,
    sensitivity: str,
    original_metric,
    ranking: dict[str, float],
    trials: list[TrialResult],
    final: TrialResult | None,
    files: dict | None = None,
) -> Path:
    """Write the report atomically; returns ``path``."""
    tree = {
        "strategy": strategy,
        "sensitivity": sensitivity,
        "original_metric": original_metric,
        "sensitivity_ranking": [
            {"layer": name, "cosine_similarity": ranking[name]} for name in rank_by_cosine(ranking)
        ],
        "trials": [_trial(t) for t in trials],
        "passed": final is not None,
        "rolled_back": list(final.rolled_back) if final else None,
        "final_metric": final.metric if final else None,
        "files": {k: os.fspath(v) for k, v in (files or {}).items()},
    }
    atomic_write_text(path, json.dumps(tree, indent=1, default=_plain) + "\n")
    return path


def _trial(t: TrialResult) -> dict:
    return {
        "rolled_back": list(t.rolled_back),
        "metric": t.metric,
        "loss": t.loss,
        "passed": t.passed,
    }


def _plain(value):
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)
