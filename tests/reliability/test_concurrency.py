"""Two PTQ runs at once (threads, then processes) write what two sequential runs write.

Different models (a conv net and an MLP), different folders and record files. Every output
(config, record, modified/fake-quant/deploy ONNX) must be byte-identical to the sequential run,
and the process-wide state the exporters touch (``sys.stderr``, warning filters, torch logger
levels, the cyclic GC) must be back as it was. The thread case runs in a fresh interpreter
(:mod:`tests.reliability.concurrent_threads`) so state left by earlier tests cannot blur it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.concurrent_flow import OUTPUTS, ptq_run

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("conv", "mlp")


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sequential")
    return {name: ptq_run(name, str(tmp / name)) for name in NAMES}


def test_two_threads_write_what_sequential_runs_write(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.concurrent_threads", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "concurrent" / "conv" / "net_deploy_model.onnx").exists()


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
