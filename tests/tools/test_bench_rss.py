"""bench/rss.py: a phase's peak counts a spike however short, nested phases each see theirs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench import rss

MIB = 2**20


def _spike(mib: int) -> None:
    """Touch ``mib`` MiB and free them at once (far shorter than a sampling interval)."""
    block = np.ones(mib * MIB // 8)
    del block


@pytest.mark.skipif(not rss._reset_high_water_mark(), reason="VmHWM cannot be reset here")
def test_nested_phases_each_count_their_own_short_spike():
    with rss.PeakRss() as outer:
        with rss.PeakRss() as first:
            _spike(160)
        with rss.PeakRss() as second:
            _spike(40)
    assert 150 <= first.extra_mb <= 180
    assert 35 <= second.extra_mb <= 60  # the first spike, before its reset, is not its own
    assert outer.extra_mb >= first.extra_mb - 1  # folded in when the second phase reset
    assert rss.max_rss_bytes() >= outer.peak


def test_sampling_fallback_when_the_mark_cannot_be_reset(monkeypatch):
    monkeypatch.setattr(rss, "_CLEAR_REFS", "/nonexistent/clear_refs")
    with rss.PeakRss(interval=0.001) as phase:
        block = np.ones(64 * MIB // 8)
        time.sleep(0.05)  # long enough for the sampler
        del block
    assert phase._thread is not None
    assert 50 <= phase.extra_mb <= 90
