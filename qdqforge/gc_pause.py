"""Pause Python's cyclic garbage collector around graph-sized work.

Rewriting or converting a graph allocates many small objects (gs tensors, fx nodes, modules);
generational GC passes over them make the cost per node grow with graph size. Neither the passes
nor the converter create reference cycles that need reaping while they run. The torch exporters
(``front.export.exporters``) run paused too: a dynamo export leaves hundreds of thousands of
long-lived objects (fx graphs, the exporter's modules) that triggered 4 full collections of
~0.17 s each during MobileNetV3's export (config 6.4-6.6 s -> 5.9 s, peak RSS +8 MB). So do
the saves (``front.save.write_models``): the copies a save builds and drops then die young
(MobileNetV3's save: one full collection of 0.27 s fewer); the stages of large graphs collect
their dropped graphs explicitly (``graph.detached.reap_dropped``), paused or not.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC for the block; restore its previous state afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
