"""Two PTQ runs at once (threads, then processes) write what two sequential runs write.

Different models (a conv net and an MLP), different folders and record files. Every output
(config, record, modified/fake-quant/deploy ONNX) must be byte-identical to the sequential run,
and the process-wide state the exporters touch (``sys.stderr``, warning filters, torch logger
levels, the cyclic GC) must be back as it was.
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from qdqforge.front.quiet import _NOISY_LOGGERS
from tests.reliability.concurrent_flow import OUTPUTS, model_named, ptq_run

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("conv", "mlp")


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sequential")
    return {name: ptq_run(name, str(tmp / name)) for name in NAMES}


def _global_state() -> tuple:
    levels = tuple(logging.getLogger(n).level for n in _NOISY_LOGGERS)
    return sys.stderr, warnings.showwarning, len(warnings.filters), levels, gc.isenabled()


def test_two_threads_write_what_sequential_runs_write(sequential, tmp_path):
    before, results, errors = _global_state(), {}, []
    start = threading.Barrier(len(NAMES))
    models = {name: model_named(name) for name in NAMES}  # seeding is global: not in threads

    def run(name: str) -> None:
        try:
            start.wait()
            results[name] = ptq_run(name, str(tmp_path / name), models[name])
        except BaseException as e:  # reported below, with the thread's model
            errors.append((name, e))

    threads = [threading.Thread(target=run, args=(name,)) for name in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for name in NAMES:
        for output in OUTPUTS:
            assert results[name][output] == sequential[name][output], f"{name}: {output} differs"
    assert _global_state() == before


def test_two_processes_write_what_sequential_runs_write(sequential, tmp_path):
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.concurrent_flow", name, str(tmp_path / name)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
    for name in NAMES:
        for output in OUTPUTS:
            data = (tmp_path / name / output).read_bytes()
            assert data == sequential[name][output], f"{name}: {output} differs"
