"""Child process of ``test_mapped``'s inline-load test: what loading a model with its weights
inside the proto leaves resident.

Run as ``python -m tests.graph.inline_load_probe MODEL``. After the imports it reads the current
anonymous RSS (:func:`bench.rss.anonymous_rss_bytes`: the heap and anonymous maps, not code or
file pages), loads ``MODEL`` with :func:`qdqforge.graph.io.load`, reads every constant's values
and reads the anonymous RSS again. One JSON line comes out: the bytes held after the load
(``held``) and the bytes of the values read (``read``). The parent fixes glibc's malloc
thresholds (:mod:`tests.helpers.fixed_malloc`) so that freed blocks leave the RSS.
"""

from __future__ import annotations

import gc
import json
import sys

from bench.rss import anonymous_rss_bytes
from qdqforge.graph import io


def held_after_load(path: str) -> dict[str, int]:
    gc.collect()
    before = anonymous_rss_bytes()
    graph = io.load(path)
    read = sum(
        tensor.values.nbytes
        for tensor in graph.gs.tensors().values()
        if getattr(tensor, "values", None) is not None
    )
    gc.collect()
    return {"held": anonymous_rss_bytes() - before, "read": read}


if __name__ == "__main__":
    print(json.dumps(held_after_load(sys.argv[1])))
