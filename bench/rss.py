"""Resident-memory measurements: a sampling thread for one phase, and the process peak."""

from __future__ import annotations

import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


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
    return _status_kib("VmHWM") * 1024


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
    """Context manager sampling RSS every ``interval`` s; ``extra_mb`` = peak minus RSS at entry.

    Sampling can miss a spike shorter than ``interval``; it is meant for phases of seconds.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = current_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
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
