"""Shared pytest configuration for the qdqforge test suite (kept minimal; areas may append).

Hypothesis profiles for the fuzz tests: ``ci`` (the default, 200 examples per test) and ``long``
(5,000), chosen with ``pytest --hypothesis-profile=long`` or ``QDQFORGE_FUZZ=long``. The export
cache is emptied before every test.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from qdqforge.front.export.cache import clear_export_cache

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("QDQFORGE_FUZZ", "ci"))  # --hypothesis-profile overrides


@pytest.fixture(autouse=True)
def _fresh_export_cache():
    """Each test starts with an empty export cache: a graph cached by another test must not
    stand in for an export a test monkeypatches or counts."""
    clear_export_cache()
    yield
