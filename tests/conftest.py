"""Shared pytest configuration for the qdqforge test suite (kept minimal; areas may append).

Hypothesis profiles for the fuzz tests: ``ci`` (the default, 200 examples per test) and ``long``
(5,000), chosen with ``pytest --hypothesis-profile=long`` or ``QDQFORGE_FUZZ=long``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("QDQFORGE_FUZZ", "ci"))  # --hypothesis-profile overrides
