"""glibc's malloc thresholds fixed, for child processes whose RSS a test reads.

Left dynamic, a freed block of a MiB or more may stay in the heap or go back to the kernel at
glibc's choosing (the threshold for mapping a block on its own rises with the largest block
freed), so the RSS after a job says as much about glibc's history as about what the job still
holds. With every block of 64 KiB or more mapped on its own and unmapped when freed, and the
heap trimmed past 128 KiB, the RSS follows what is alive. Other C libraries ignore these.
"""

from __future__ import annotations

import os

FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def fixed_malloc_env(**more: str) -> dict[str, str]:
    """This process's environment with :data:`FIXED_MALLOC` and ``more`` set."""
    return {**os.environ, **FIXED_MALLOC, **more}
