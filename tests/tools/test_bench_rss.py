"""bench/rss.py: a phase's peak counts a spike however short, nested phases each see theirs."""

from __future__ import annotations

import mmap
import time

import pytest

from bench import rss

MIB = 2**20
PAGE = mmap.PAGESIZE


def _touched(mib: int) -> mmap.mmap:
    """``mib`` MiB of fresh pages, each written: an anonymous mapping of its own (numpy's
    allocation may reuse pages a long process already holds, which raise no RSS)."""
    block = mmap.mmap(-1, mib * MIB)
    for offset in range(0, mib * MIB, PAGE):
        block[offset] = 1
    return block


def _spike(mib: int) -> None:
    """Touch ``mib`` MiB and unmap them at once (far shorter than a sampling interval)."""
    _touched(mib).close()


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
        block = _touched(64)
        time.sleep(0.05)  # long enough for the sampler
        block.close()
    assert phase._thread is not None
    assert 50 <= phase.extra_mb <= 90
