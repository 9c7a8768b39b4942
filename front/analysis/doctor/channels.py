"""Per-channel range of a layer's input and its outlier ratio.

For each input channel ``j``: ``lo_j = min x_j``, ``hi_j = max x_j`` over the batch and every
other axis, ``a_j = max(|lo_j|, |hi_j|)``. The outlier ratio is ``max_j a_j / median_j a_j``:
about 1-3 for well-spread channels; in the hundreds when one channel would set the per-tensor
int8 step for all the others (what DMQ balancing is for). Before DMQ the range is the balanced
input's times the factor (``x = x' * s``, ``s > 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIGNIFICANT = 5  # digits kept in JSON: the page draws them, nobody recomputes from them


@dataclass(frozen=True)
class ChannelRanges:
    """``lo``/``hi`` per input channel (module docstring)."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def absmax(self) -> np.ndarray:
        """``a_j = max(|lo_j|, |hi_j|)``."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    @property
    def outlier_ratio(self) -> float:
        """``max a / median a``; inf when the median is 0 but not the max, 1 when all are 0."""
        a = self.absmax
        top, mid = float(a.max()), float(np.median(a))
        if mid == 0.0:
            return 1.0 if top == 0.0 else math.inf
        return top / mid

    def scaled(self, factors: np.ndarray) -> ChannelRanges:
        """The ranges times per-channel ``factors`` (> 0): the input before the balance Mul."""
        return ChannelRanges(self.lo * factors, self.hi * factors)

    def to_dict(self) -> dict:
        """``{"lo": [...], "hi": [...]}`` rounded to :data:`SIGNIFICANT` digits."""
        return {"lo": _rounded(self.lo), "hi": _rounded(self.hi)}

    @classmethod
    def from_dict(cls, data: dict) -> ChannelRanges:
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(data["lo"], np.float64), np.asarray(data["hi"], np.float64))


def _rounded(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{SIGNIFICANT}g}") for v in np.asarray(values, np.float64).tolist()]
