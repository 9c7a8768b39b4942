"""How far a quantized run's output is from the float one: one :class:`Deviation`, many metrics.

All outputs of a model are flattened and concatenated into one float64 vector, ``r`` for the
float run and ``t`` for the (partly) fake-quantized one. :func:`deviation` reduces the pair to
four sums, and every metric is a function of those sums::

    signal = sum(r^2)    test = sum(t^2)    cross = sum(r * t)    noise = sum((t - r)^2)

    SQNR   = 10 * log10(signal / noise)                   dB; +inf when noise == 0
    cosine = cross / (sqrt(signal) * sqrt(test))          1 when t == r == 0, 0 when one is 0
    rel_l2 = sqrt(noise / signal) = 10^(-SQNR / 20)       +inf when r == 0 != t

Every 6.02 dB of SQNR is one bit of the output's effective precision. The sums are the same
float64 dot products numpy's ``norm`` takes, so a metric here equals the former per-engine
formulas bit for bit. A NaN or infinity in ``r`` or ``t`` facing a different value is each
metric's worst value, never NaN (NaN would sort anywhere in a ranking and pass every
threshold); the same non-finite value on both sides is left out of the sums.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qdqforge.graph.numerics import nonfinite_mismatch


@dataclass(frozen=True)
class Deviation:
    """The sums of one (float, quantized) output pair (module docstring).

    Attributes:
        signal: ``sum(r^2)``.
        test: ``sum(t^2)``.
        cross: ``sum(r * t)``.
        noise: ``sum((t - r)^2)``.
        nonfinite: a NaN/inf faces a different value (every metric is then at its worst).
    """

    signal: float
    test: float
    cross: float
    noise: float
    nonfinite: bool = False


def flatten_outputs(outputs: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """All outputs as one float64 vector, in output order."""
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    return np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in outputs])


def deviation(reference, test) -> Deviation:
    """The :class:`Deviation` of ``test`` from ``reference`` (arrays or lists of arrays)."""
    r, t = flatten_outputs(reference), flatten_outputs(test)
    if nonfinite_mismatch(r, t):
        return Deviation(math.nan, math.nan, math.nan, math.nan, nonfinite=True)
    if not np.isfinite(r).all():  # the same NaN/inf on both sides: compare the rest
        keep = np.isfinite(r)
        r, t = r[keep], t[keep]
    noise = t - r
    return Deviation(
        float(np.dot(r, r)), float(np.dot(t, t)), float(np.dot(r, t)), float(np.dot(noise, noise))
    )


class Metric(Protocol):
    """A per-layer sensitivity metric: a number from a :class:`Deviation`.

    Attributes:
        name: key of the metric in reports (``"cosine_similarity"``, ``"sqnr_db"``).
        higher_is_better: True when a larger value means a less sensitive layer.
    """

    name: str
    higher_is_better: bool

    def of(self, dev: Deviation) -> float:
        """The metric's value for ``dev``."""
        ...


class _OfOutputs:
    """``metric(reference, test)``: :func:`deviation` then the metric's ``of``."""

    def __call__(self, reference, test) -> float:
        return self.of(deviation(reference, test))


@dataclass(frozen=True)
class CosineSimilarity(_OfOutputs):
    """AMCT's ``CosineSimilarity``: ``cross / (|r| |t|)``.

    Attributes:
        on_nonfinite: the value for a NaN/inf mismatch. -1.0 (the default, auto-calibration's
            ranking) is the bottom of cosine's range; the doctor's reports have always shown
            0.0 ("nothing in common") and keep doing so.
    """

    on_nonfinite: float = -1.0
    name: str = "cosine_similarity"
    higher_is_better: bool = True

    def of(self, dev: Deviation) -> float:
        if dev.nonfinite:
            return self.on_nonfinite
        norms = math.sqrt(dev.signal) * math.sqrt(dev.test)
        if norms == 0.0:
            return 1.0 if dev.noise == 0.0 else 0.0
        return dev.cross / norms


@dataclass(frozen=True)
class Sqnr(_OfOutputs):
    """Signal-to-quantization-noise ratio in dB: ``10 log10(signal / noise)``."""

    name: str = "sqnr_db"
    higher_is_better: bool = True

    def of(self, dev: Deviation) -> float:
        if dev.nonfinite:
            return -math.inf
        if dev.noise == 0.0:
            return math.inf
        return -math.inf if dev.signal == 0.0 else 10.0 * math.log10(dev.signal / dev.noise)


@dataclass(frozen=True)
class RelativeL2(_OfOutputs):
    """Relative L2 error ``|t - r| / |r|``."""

    name: str = "rel_l2"
    higher_is_better: bool = False

    def of(self, dev: Deviation) -> float:
        if dev.nonfinite:
            return math.inf
        if dev.signal == 0.0:
            return 0.0 if dev.noise == 0.0 else math.inf
        return math.sqrt(dev.noise / dev.signal)
