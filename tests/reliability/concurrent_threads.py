"""Two PTQ runs in two threads at once vs the same runs one after the other, in a fresh process.

Run as ``python -m tests.reliability.concurrent_threads FOLDER``; exits 1 naming the first output
that differs, or when the process-wide state the exporters touch is not restored. A fresh
interpreter keeps what earlier tests did to process state (exporter caches, thread pools) out of
the comparison.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import warnings
from pathlib import Path

from qdqforge.front.export.quiet import _NOISY_LOGGERS
from tests.reliability.concurrent_flow import OUTPUTS, model_named, ptq_run

NAMES = ("conv", "mlp")


def global_state() -> tuple:
    levels = tuple(logging.getLogger(n).level for n in _NOISY_LOGGERS)
    return sys.stderr, warnings.showwarning, len(warnings.filters), levels, gc.isenabled()


def run_threads(folder: Path, names, *, together: bool) -> dict:
    """Each run in its own thread, all at once (``together``) or one after the other."""
    results, errors, models = {}, [], {name: model_named(name) for name in names}
    start = threading.Barrier(len(names) if together else 1)

    def run(name: str) -> None:
        try:
            start.wait()
            results[name] = ptq_run(name, str(folder / name), models[name])
        except BaseException as e:  # reported by the caller, with the thread's model
            errors.append((name, e))

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
        if not together:
            thread.join()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"runs failed: {errors}")
    return results


def main(folder: Path) -> int:
    sequential = run_threads(folder / "sequential", NAMES, together=False)
    before = global_state()
    concurrent = run_threads(folder / "concurrent", NAMES, together=True)
    for name in NAMES:
        for output in OUTPUTS:
            if concurrent[name][output] != sequential[name][output]:
                print(f"{name}: {output} differs", file=sys.stderr)
                return 1
    if global_state() != before:
        print("process-wide state not restored", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
