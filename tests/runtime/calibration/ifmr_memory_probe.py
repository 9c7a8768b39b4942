"""Child process of ``test_kernels_ifmr``'s memory test: peak RSS of an IFMR calibration stream.

Run as ``python -m tests.runtime.calibration.ifmr_memory_probe BATCHES NUMEL``. It makes
``BATCHES`` float32 batches of ``NUMEL`` values one at a time (each dropped after its update) and
feeds them to an :class:`IfmrObserver`, reading the process's peak RSS and its current anonymous
RSS (``VmHWM`` and ``RssAnon``, :mod:`bench.rss`: the kernel's counts, which no buffer accounting
of the observer's can change) after :data:`SETTLE` batches, when one update's transient
allocations have all been made once, and after the last one. Then the control: :data:`KEPT` more
batches held in a list, as AMCT's concatenation holds them, must raise the current RSS by about
their size, or the measurement could not see a growing observer either (the peak may not move: a
first-use build of the compiled kernels can leave it tens of MiB above the current RSS). One JSON
line of KiB figures comes out.

Not ``ru_maxrss``: Linux carries it from the parent across ``fork`` and ``execve``, so under
pytest (9.4 GB peak in a CI run) it read the parent's figure before and after and the peak could
not move. Not the whole current RSS: it counts mapped code and file pages, which the kernel drops
and faults in again; a CI run read 13.4 MB more of it after the stream than after settling
(which pages is not known; alone, every run reads 0-2 MiB in anonymous and file pages alike).
"""

from __future__ import annotations

import json
import sys

import torch

from bench.rss import anonymous_rss_bytes, max_rss_bytes
from qdqforge.runtime.calibration.ifmr import IfmrObserver

SETTLE = 8
KEPT = 32


def peak_rss_kib() -> int:
    return max_rss_bytes() // 1024


def rss_kib() -> int:
    return anonymous_rss_bytes() // 1024


def main(batches: int, numel: int) -> None:
    torch.set_num_threads(1)  # the same allocations however loaded the machine is
    gen = torch.Generator().manual_seed(0)
    observer, peaks = IfmrObserver(), {}
    for i in range(batches):
        observer.update(torch.randn(numel, generator=gen))
        if i + 1 == SETTLE:
            peaks["settled"], peaks["settled_now"] = peak_rss_kib(), rss_kib()
    peaks["streamed"], peaks["streamed_now"] = peak_rss_kib(), rss_kib()
    kept = [torch.randn(numel, generator=gen) for _ in range(KEPT)]
    peaks["control_now"] = rss_kib()
    print(json.dumps({**peaks, "kept_kib": sum(t.numel() * 4 for t in kept) // 1024}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
