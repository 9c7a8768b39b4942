"""Resident-memory measurements: the exact peak of one phase, and the process peak.

A phase's peak is read from the kernel's high-water mark (``VmHWM``), reset when the phase
starts (``/proc/self/clear_refs``, Linux >= 4.0): every page counts, however short the spike.
Sampling RSS every few milliseconds missed spikes: on the 2.3 GB model of
``bench/large_flow.py`` the stages' sampled peaks read at most 2.64x the weights above the
interpreter while the process's ``VmHWM`` read 3.05x. Phases nest: a reset first folds the
mark reached so far into every open phase and into the process peak. Where the mark cannot be
reset, a phase samples RSS every ``interval`` seconds as before.
"""

from __future__ import annotations

import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")
_CLEAR_REFS = "/proc/self/clear_refs"
_open_phases: list[PeakRss] = []
_peak_before_reset = 0  # the process's high-water mark as it was before the last reset


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (``VmHWM`` of ``/proc/self/status``).

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that across ``fork`` and ``execve``, so a
    child of a process that once held 9 GB reads 9 GB before it has done anything (measured: a
    child of a 2 GB parent read 2.1 GB, its ``VmHWM`` 11 MB). ``VmHWM`` belongs to the new
    address space.
    """
    return max(_peak_before_reset, _high_water_mark())


def _high_water_mark() -> int:
    return _status_kib("VmHWM") * 1024


def _fold_high_water_mark() -> int:
    """The mark now, folded into the process peak and every open phase's peak."""
    global _peak_before_reset
    mark = _high_water_mark()
    _peak_before_reset = max(_peak_before_reset, mark)
    for phase in _open_phases:
        phase.peak = max(phase.peak, mark)
    return mark


def _reset_high_water_mark() -> bool:
    """Fold the mark in, then set it to the RSS now; False when the kernel refuses."""
    _fold_high_water_mark()
    try:
        with open(_CLEAR_REFS, "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def anonymous_rss_bytes() -> int:
    """Resident anonymous memory now (``RssAnon``): what a process's data holds, not the pages
    of code and files it has mapped, which the kernel may drop and fault in again at any time."""
    return _status_kib("RssAnon") * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0])
    raise KeyError(f"/proc/self/status has no {field}")


class PeakRss:
    """Context manager: ``peak`` = the phase's peak RSS (module docstring), ``extra_mb`` = that
    minus RSS at entry. Exact where the high-water mark can be reset; otherwise sampled every
    ``interval`` s, which can miss a spike shorter than that."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_bytes())

    def __enter__(self) -> PeakRss:
        exact = _reset_high_water_mark()
        self.start = self.peak = current_rss_bytes()
        if exact:
            _open_phases.append(self)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            _fold_high_water_mark()
            _open_phases.remove(self)
        else:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


class Stopwatch:
    """``with Stopwatch() as t: ...``; then ``t.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.begin, self.seconds = time.perf_counter(), 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.begin
