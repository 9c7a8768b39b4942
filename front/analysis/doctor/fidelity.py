"""How close a quantized model's output is to the float one: SQNR, cosine and relative L2.

One :class:`Fidelity` is three metrics of the sensitivity engine
(:mod:`qdqforge.front.analysis.sensitivity_metrics`) on one
:class:`~qdqforge.front.analysis.sensitivity_metrics.Deviation`, with ``r`` the float model's
flattened output, ``t`` the fake-quant one's and the noise ``n = t - r``::

    SQNR   = 10 * log10(sum(r^2) / sum(n^2))       dB; +inf when n == 0
    cosine = sum(r * t) / (|r| * |t|)               1 when both are 0, 0 when only one is
    rel_l2 = |n| / |r| = 10^(-SQNR / 20)            +inf when r == 0 != n

A NaN or infinity in ``t`` or ``r`` facing a different value is the worst fidelity (SQNR -inf,
cosine 0, rel-L2 +inf), never NaN: NaN would sort anywhere in the doctor's ranking and pass
every threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qdqforge.front.analysis.sensitivity_metrics import (
    CosineSimilarity,
    Deviation,
    RelativeL2,
    Sqnr,
    deviation,
)

SQNR, COSINE, REL_L2 = Sqnr(), CosineSimilarity(on_nonfinite=0.0), RelativeL2()


@dataclass(frozen=True)
class Fidelity:
    """Output fidelity of a fake-quant run against the float run (module docstring)."""

    sqnr_db: float
    cosine: float
    rel_l2: float

    @classmethod
    def of(cls, dev: Deviation) -> Fidelity:
        """The three metrics of one deviation."""
        return cls(SQNR.of(dev), COSINE.of(dev), REL_L2.of(dev))

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


def fidelity(reference, test) -> Fidelity:
    """SQNR, cosine and relative L2 of ``test`` against ``reference`` (module docstring)."""
    return Fidelity.of(deviation(reference, test))
