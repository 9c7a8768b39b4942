"""How close a quantized model's output is to the float one: SQNR, cosine and relative L2.

All outputs of the model are flattened and concatenated into one vector (float64), ``r`` for the
float model and ``t`` for the fake-quant one; with the noise ``n = t - r``::

    SQNR   = 10 * log10(sum(r^2) / sum(n^2))       dB; +inf when n == 0
    cosine = sum(r * t) / (|r| * |t|)               1 when both are 0, 0 when only one is
    rel_l2 = |n| / |r| = 10^(-SQNR / 20)            +inf when r == 0 != n

Every 6.02 dB of SQNR is one bit of the output's effective precision. A NaN or infinity in
``t`` or ``r`` facing a different value is the worst fidelity (SQNR -inf, cosine 0, rel-L2 +inf),
never NaN: NaN would sort anywhere in the doctor's ranking and pass every threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qdqforge.graph.numerics import nonfinite_mismatch


@dataclass(frozen=True)
class Fidelity:
    """Output fidelity of a fake-quant run against the float run (module docstring)."""

    sqnr_db: float
    cosine: float
    rel_l2: float

    def to_dict(self) -> dict:
        """JSON object; infinities become the strings ``"inf"`` / ``"-inf"``."""
        return {k: json_float(v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Fidelity:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: float(v) for k, v in data.items()})


def json_float(value: float) -> float | str:
    """``value`` for JSON: finite floats as they are, infinities as ``"inf"``/``"-inf"``."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def flatten_outputs(outputs: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """All outputs as one float64 vector, in output order."""
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    return np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in outputs])


def fidelity(reference: np.ndarray, test: np.ndarray) -> Fidelity:
    """SQNR, cosine and relative L2 of ``test`` against ``reference`` (module docstring)."""
    r, t = flatten_outputs(reference), flatten_outputs(test)
    if nonfinite_mismatch(r, t):
        return Fidelity(-math.inf, 0.0, math.inf)
    if not np.isfinite(r).all():  # the same NaN/inf on both sides: compare the rest
        keep = np.isfinite(r)
        r, t = r[keep], t[keep]
    signal, noise = float(np.dot(r, r)), float(np.dot(t - r, t - r))
    return Fidelity(_sqnr(signal, noise), _cosine(r, t), _rel_l2(signal, noise))


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    return -math.inf if signal == 0.0 else 10.0 * math.log10(signal / noise)


def _cosine(r: np.ndarray, t: np.ndarray) -> float:
    norms = float(np.linalg.norm(r) * np.linalg.norm(t))
    if norms == 0.0:
        return 1.0 if not r.any() and not t.any() else 0.0
    return float(np.dot(r, t)) / norms


def _rel_l2(signal: float, noise: float) -> float:
    if signal == 0.0:
        return 0.0 if noise == 0.0 else math.inf
    return math.sqrt(noise / signal)
