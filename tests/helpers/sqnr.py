"""SQNR in dB, computed independently in numpy."""

from __future__ import annotations

import math

import numpy as np


def numpy_sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    ref, test = ref.astype(np.float64), test.astype(np.float64)
    return 10 * math.log10((ref**2).sum() / ((test - ref) ** 2).sum())
