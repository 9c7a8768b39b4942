"""Two processes sharing one record path never save a wrong model (issue 16, class 1).

Two PTQ flows, a net ("small") and the same net with 1000x larger parameters ("large"), run in
two processes with one record file, in the order that defeats a check at save time alone
(tests/reliability/shared_record_flow.py): small quantizes, large quantizes (the record now holds
large's ``scale_w``) and calibrates, small calibrates, large saves. Large's weights do lie on the
record's grid, so only the calibration's own check can stop small from writing its ``scale_d``
over large's: small gets a RecordError naming the layer and the shared path, and large saves a
model that computes its own float model (relative L2 error of the fake-quant model in
onnxruntime's default session < 0.05; with small's activation scales it is ~1). The orders where
the save's weight-grid check decides are catalogue rows (``record:shared-path-*``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.reliability.shared_record_flow import NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_sharing_a_record_path(tmp_path):
    barrier, record = tmp_path / "barrier", tmp_path / "shared_record.txt"
    barrier.mkdir()
    flow = [sys.executable, "-m", "tests.reliability.shared_record_flow"]
    procs = {
        name: subprocess.Popen(
            [*flow, name, str(record), str(tmp_path / name), str(barrier)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {err[-3000:]}"
        results[name] = json.loads(out.strip().splitlines()[-1])
    small, large = results["small"], results["large"]
    assert small["status"] == "RecordError", results
    assert "layer 'conv': scale_w is no longer" in small["message"], small
    assert "sharing this record path" in small["message"], small
    assert not (tmp_path / "small" / "net_fake_quant_model.onnx").exists()
    assert large["status"] == "saved" and large["error"] < 0.05, results
    assert json.loads((tmp_path / "large" / "net_verify.json").read_text())["passed"] is True
