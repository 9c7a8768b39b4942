"""A model whose weights pass protobuf's 2 GB limit: the round trip, and the flows' peak memory.

Two Linear(16384, 16384) layers and a Linear(16384, 2048) (``bench/models/wide_mlp.py``): 2.3 GB
of float32 weights, built without torch's init. The round trip: the exported proto goes through
the default passes, is reimported (its outputs must equal the model's) and saved with external
data (``<name>.data`` beside the graph); onnxruntime on the saved files must give the model's
outputs. The flows: ``bench/large_flow.py`` in a child process runs the PTQ flow
(``create_quant_config``, ``quantize_model``, calibration, ``save_model``) and the QAT set-up +
save on the same model; its peak RSS, read from outside (``RUSAGE_CHILDREN``), must stay under
:data:`PEAK_LIMIT` times the weights (the user's model itself is 1x of it), and both saves'
checks must pass (the fake-quant model's default-session run left out, as for every model with
external data: ``front.save.verify``). Marked ``slow``; skipped unless ``/proc/meminfo`` shows
enough available memory.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import qdqforge
from bench.models.wide_mlp import WideMlp, wide_mlp_bytes
from qdqforge.front.save.verify import FLOAT_SESSION
from qdqforge.graph import io

log = logging.getLogger(__name__)

WIDTH = 16384
WEIGHT_BYTES = wide_mlp_bytes(WIDTH)
NEEDED_GIB = 16  # measured peak of the round trip (README, Reliability) plus headroom
ROOT = Path(__file__).resolve().parents[2]
# Peak RSS of the flows / weight bytes. Target 2.0 (the model plus one copy), NOT reached.
# Measured on this model (2026-12-04, one run, machine otherwise idle, 2.4 min): the child's
# peak (VmHWM) 3.62x (7.7 GiB; stages above the interpreter: PTQ 2.73x in save_model, QAT
# 3.15x in its forwards and 3.50x in its save); the rounds before: 4.25x, 5.98x. 4.2 = that
# plus 0.6x of margin. The QAT save sets it (2026-12-05: 3.59x, its save 3.45x above the
# interpreter: the user's model, the QAT module and the save's fake-quantized weights). Then the
# QAT save spilled those weights to a file as it computed them (graph.mapped.SpillFile;
# 2026-12-05 night, two runs): 3.18x, its save 3.04x above the interpreter, the rest one layer's
# fake-quantization temporaries (two of its size: here a layer is 0.47x of the weights; on 16
# layers of 4096 the save went 3.48x -> 2.49x). Then both saves were verified (weights read
# in place through maps, fed to the reference sessions, no onnxruntime arena for large ones;
# 2026-12-05 night, one run): 3.74x, the QAT save 3.60x above the interpreter (46 s; unverified
# 3.04x, 17-21 s). Then the check held the saved models' inline int8 weights as views of the
# mapped files (graph.wire; 2026-12-06, one run): 3.24x, the QAT save 3.10x above the
# interpreter (44 s). Then the save check ran the fed reference sessions in segments
# (graph.segmented_run), handed back mapped pages after session set-up and after the kernel
# audit, and the QAT save fake-quantized each weight in place (2026-12-06, two runs): 2.97x, the
# QAT save 2.97x with the interpreter (46 s; a QAT-only process: 2.83x, set by the QDQ model's
# default-kernel session); with the runtime stage's sessions segmented as well, 2.86x (one
# run; QAT-only: 2.72x, set by onnxruntime's optimizer session). Limit: 2.97x plus 0.33x.
PEAK_LIMIT = 3.3
# The PTQ stages' own peaks (exact: bench/rss resets VmHWM per stage), with the interpreter.
# 2026-12-05, after the flows stopped copying the user's parameters: 2.58-2.64x in save_model
# (four runs; config 1.23x, quantize_model 2.26-2.30x); 3.17x before. Then save_model read the
# modified ONNX's weights mapped (graph.mapped; 2026-12-05 evening, one run): quantize_model
# 2.23x sets it, save_model 1.69x (2.49x before). Then save_model verified the > 2 GB models
# (one run): 2.73x (39 s; 1.70x and 13 s unverified), quantize_model 2.24x. Then the check read
# the QDQ and deploy models' inline int8 weights mapped (2026-12-06, one run): save_model 2.23x
# (34 s), quantize_model 2.24x. Limits: those plus ~0.26x, the save apart.
PTQ_PEAK_LIMIT = 2.5
SAVE_PEAK_LIMIT = 2.5


def available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


@pytest.mark.slow
@pytest.mark.skipif(available_gib() < NEEDED_GIB, reason=f"needs {NEEDED_GIB} GiB available")
def test_model_over_2gb_round_trips_with_external_data(tmp_path):
    start = time.perf_counter()
    model, x = (
        WideMlp(WIDTH).eval(),
        torch.randn(2, WIDTH, generator=torch.Generator().manual_seed(1)),
    )
    assert WEIGHT_BYTES > 2**31
    with torch.no_grad():
        want = model(x).numpy()
    rewritten = qdqforge.rewrite(qdqforge.export(model, x, check=False))
    net = qdqforge.reimport(rewritten)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), want, rtol=0, atol=1e-5)
    del net
    path = io.save(rewritten, tmp_path / "huge.onnx")
    names = [i.name for i in rewritten.graph.input]
    del rewritten
    assert (tmp_path / "huge.onnx.data").stat().st_size >= WEIGHT_BYTES
    assert path.stat().st_size < 2**20
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {names[0]: x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    log.warning("2.3 GB model: %.0f s, peak RSS %.1f GiB", time.perf_counter() - start, peak)


@pytest.mark.slow
@pytest.mark.skipif(available_gib() < NEEDED_GIB, reason=f"needs {NEEDED_GIB} GiB available")
def test_flows_on_model_over_2gb_peak_under_limit(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "large_flow.py"), "--width", str(WIDTH),
               "--pipeline", "both", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the child's own peak (VmHWM): RUSAGE_CHILDREN would give the largest child pytest ever had
    peak = result["peak_x"] * WEIGHT_BYTES
    log.warning(
        "flows on the 2.3 GB model: %s; child peak %.2fx the weights", result, peak / WEIGHT_BYTES
    )
    for kind in ("fake_quant", "deploy", "qdq"):
        for prefix in ("net", "qat"):
            path = tmp_path / f"{prefix}_{kind}_model.onnx"
            onnx.checker.check_model(str(path))  # the graph and its external data
    assert (tmp_path / "net_fake_quant_model.onnx.data").stat().st_size >= WEIGHT_BYTES
    for prefix in ("net", "qat"):  # verified, the fake-quant default session left out
        report = json.loads((tmp_path / f"{prefix}_verify.json").read_text())
        assert report["status"] == "passed" and list(report["skipped"]) == [FLOAT_SESSION]
    assert result["weight_bytes"] == WEIGHT_BYTES
    assert peak / WEIGHT_BYTES <= PEAK_LIMIT
    ptq = [stage for stage in result["stages"] if not stage["name"].startswith("qat ")]
    saves = [stage["x_weights"] for stage in ptq if stage["name"] == "save_model"]
    others = [stage["x_weights"] for stage in ptq if stage["name"] != "save_model"]
    assert len(others) == 3 and max(others) <= PTQ_PEAK_LIMIT
    assert len(saves) == 1 and saves[0] <= SAVE_PEAK_LIMIT
