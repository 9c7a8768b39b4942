"""How two runs of a quantized model differ: per activation on its integer grid, per output.

Integer tensors are compared with :func:`qdqforge.graph.quant_compare.compare_grid` (int8 or
int16 grid, differences in int8-equivalent steps); outputs by their largest absolute error and
that error relative to the reference's ``max |y|``. :mod:`.verify_budget` judges both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qdqforge.graph.quant_compare import GridMismatch, compare_grid


@dataclass(frozen=True)
class FreeRunning:
    """Two runs compared without forcing: how far apart the user sees them end to end."""

    differ: int
    total: int
    max_steps: int
    output_rel: float


@dataclass(frozen=True)
class OutputDifference:
    """Largest absolute and relative (to ``max|reference|``) error of one model output.

    ``forced``: no rounding lies between the output and the forced tensors
    (:mod:`qdqforge.graph.rounding_cone`), so the difference is one layer's float round-off and
    is judged; False: a rounding upstream was not forced (the runtime renamed or fused its
    tensor), the difference includes free-running flips: reported, not judged.
    """

    output: str
    max_abs: float
    max_rel: float
    forced: bool = True


def grid_errors(
    order: list[str],
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    bits: Mapping[str, int] | None = None,
) -> list[GridMismatch]:
    """Per tensor of ``order`` present in both, how ``b``'s integers differ from ``a``'s.

    ``bits`` gives each tensor's grid (8 when absent; 16 is judged as :func:`compare_grid` says).
    """
    result = []
    for name in (n for n in order if n in a and n in b):
        qa, qb, grid = np.asarray(a[name]), np.asarray(b[name]), (bits or {}).get(name, 8)
        if qa.shape != qb.shape:
            size = max(qa.size, qb.size)
            result.append(GridMismatch(name, 2**31, size, size, size, grid))
            continue
        result.append(compare_grid(name, qa, qb, grid))
    return result


def output_errors(
    names: list[str], a: list[np.ndarray], b: list[np.ndarray]
) -> list[OutputDifference]:
    """Per output pair, max |a - b| absolute and relative to ``max|a|``."""
    if len(a) != len(b):
        return [OutputDifference(f"{len(a)} vs {len(b)} outputs", float("inf"), float("inf"))]
    result = []
    for name, ya, yb in zip(names, a, b):
        ya, yb = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
        if ya.shape != yb.shape:
            result.append(OutputDifference(name, float("inf"), float("inf")))
            continue
        err = float(np.abs(ya - yb).max(initial=0.0))
        result.append(
            OutputDifference(name, err, err / max(float(np.abs(ya).max(initial=0.0)), 1e-12))
        )
    return result


def free_running(
    names: list[str], a: tuple[list, dict], b: tuple[list, dict], bits: Mapping[str, int]
) -> FreeRunning:
    """``(outputs, integers)`` runs ``a`` and ``b`` compared end to end (no forcing)."""
    grids = grid_errors(names, a[1], b[1], bits)
    errors = output_errors([""] * len(a[0]), a[0], b[0])
    return FreeRunning(
        sum(g.differ for g in grids),
        sum(g.total for g in grids),
        max((g.max_steps for g in grids), default=0),
        max((e.max_rel for e in errors), default=0.0),
    )
