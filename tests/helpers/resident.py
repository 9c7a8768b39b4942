"""Resident bytes of ``graph.mapped`` views, read from /proc/self/smaps (Linux)."""

from __future__ import annotations


def mapped_resident_bytes(arrays) -> int:
    """Bytes resident in this process of the maps that start where ``arrays`` start (each a
    ``SpillFile`` view: one map of its own)."""
    starts, resident, current = {a.ctypes.data for a in arrays}, 0, None
    with open("/proc/self/smaps") as handle:
        for line in handle:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                current = int(head.split("-")[0], 16)
            elif current in starts and line.startswith("Rss:"):
                resident += int(line.split()[1]) * 1024
    return resident
