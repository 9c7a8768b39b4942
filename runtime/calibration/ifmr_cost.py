"""How many clip candidates an IFMR search tries, and the most it may try (bounded by cost).

IFMR tries every factor ``start + i * step < end`` of its search range (``torch.arange``:
``ceil((end - start) / step)`` candidates); the streamed loss (``ifmr_histogram``) evaluates
all of them at once over a ``2^15``-bin float64 histogram, several ``[candidates, 2^15]``
temporaries of 256 KiB per candidate each. Measured on 2 busy cores (a 12k-value batch): 60
candidates (AMCT's ``[0.7, 1.3]`` step 0.01) 5 s, 600 5 s, 6,000 215 s; ``search_step 1e-7``
(6 million) never finished, ``search_range [0.7, 1e15]`` asked ``arange`` for 10^17 float64.
:data:`MAX_CANDIDATES` keeps the temporaries near 256 MiB each: 10x past the finest step the
default range needs in practice (0.001).
"""

from __future__ import annotations

import math

from qdqforge.runtime.calibration.ifmr import search_factors

MAX_CANDIDATES = 1024


def candidate_count(search_range: tuple[float, float], search_step: float) -> float:
    """The number of factors IFMR tries: estimated as ``ceil((end - start) / step)`` (inf when
    it overflows: a subnormal step), and counted with ``search_factors`` itself when the estimate
    is within :data:`MAX_CANDIDATES` (``torch.arange`` gives 0 for a range of 1e-301)."""
    start, end = search_range
    with_step = (end - start) / search_step if search_step > 0 else math.inf
    estimate = math.ceil(with_step) if math.isfinite(with_step) else math.inf
    if estimate > MAX_CANDIDATES:
        return estimate
    return search_factors(search_range, search_step).numel()


def candidate_problem(search_range: tuple[float, float], search_step: float) -> str | None:
    """Why ``(search_range, search_step)`` is too costly (None when it is not): the count and
    the smallest step that keeps the range within :data:`MAX_CANDIDATES`."""
    count = candidate_count(search_range, search_step)
    start, end = search_range
    if count < 1:
        return f"no IFMR candidate in [{start:g}, {end:g}) with this step; widen search_range"
    if count <= MAX_CANDIDATES:
        return None
    return (
        f"{count:.3g} IFMR candidates over [{start:g}, {end:g}], more than {MAX_CANDIDATES} "
        f"(cost grows with each); a step >= {(end - start) / MAX_CANDIDATES:.3g} or a narrower "
        "search_range"
    )
