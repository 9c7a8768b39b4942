"""Child process of ``test_untrusted_memory``: every bomb through every evaluating entry point.

Run as ``python -m tests.reliability.memory_probe N``. After importing everything it caps its
own address space at the current size plus :data:`HEADROOM` (``RLIMIT_AS``), so a bomb that is
evaluated dies with MemoryError instead of taking the machine's memory. It prints one JSON line
per (bomb, entry point): the error class and message it got (or ``null`` and a debug run's
exit code), then a last line with its peak RSS before and after the bombs (``VmHWM``: this
process's own, not ``ru_maxrss``, which it would inherit from a larger pytest parent).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from bench.rss import max_rss_bytes

HEADROOM = 1 << 30


def entry_points():
    import onnx

    import qdqforge
    from qdqforge.graph.diff.graph_diff import diff_graphs
    from qdqforge.passes.debug.inputs import random_feeds
    from qdqforge.passes.debug.run import run_debug

    def passes_run(path):  # qdqforge passes run (no onnxruntime): canonicalize folds
        return run_debug(path, ["canonicalize", "fold_bn"], dump_dir=Path(path).parent / "d")

    def passes_check_ort(path):  # --check-ort --random-inputs: every stage in onnxruntime
        proto = onnx.load(path)
        return run_debug(proto, ["canonicalize"], feeds=random_feeds(proto))

    def rewrite(path):
        return qdqforge.rewrite(onnx.load(path))

    def reimport(path):
        return qdqforge.reimport(path)

    def diff(path):
        proto = onnx.load(path)
        return diff_graphs(proto, proto, inputs=random_feeds(proto))

    return {f.__name__: f for f in (passes_run, passes_check_ort, rewrite, reimport, diff)}


def main(n: int) -> None:
    import onnx

    from tests.reliability.bombs import KINDS, bomb

    calls = entry_points()
    before = max_rss_bytes() // 1024
    _cap_address_space()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            path = Path(tmp) / kind / "bomb.onnx"
            path.parent.mkdir()
            onnx.save(bomb(kind, n), path)
            for name, call in calls.items():
                print(json.dumps({"kind": kind, "call": name, **_outcome(call, str(path))}))
    after = max_rss_bytes() // 1024
    print(json.dumps({"maxrss_kb_before": before, "maxrss_kb_after": after}))


def _outcome(call, path: str) -> dict:
    try:
        result = call(path)
    except MemoryError as e:
        return {"error": "MemoryError", "message": str(e)}
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)}
    return {"error": None, "message": "", "exit_code": getattr(result, "exit_code", None)}


def _cap_address_space() -> None:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    size = pages * resource.getpagesize() + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (size, resource.RLIM_INFINITY))


if __name__ == "__main__":
    main(int(sys.argv[1]))
