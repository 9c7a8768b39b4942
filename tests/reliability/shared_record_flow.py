"""One PTQ flow of a two-process race on one record path (tests/reliability/test_shared_record.py).

``python -m tests.reliability.shared_record_flow NAME RECORD FOLDER BARRIER`` runs model ``NAME``
("small", or "large": the same net with 1000x larger parameters) with ``RECORD``, in this
order across the two processes (each step waits for the other's mark in ``BARRIER``):

1. small: ``quantize_model``;
2. large: ``quantize_model`` (the record now holds large's ``scale_w``), calibration;
3. small: calibration (its weight scales were overwritten);
4. large: ``save_model``.

Prints one JSON line: ``{"status": "saved", "error": e}`` with ``e`` the relative L2 error of the
fake-quant model in onnxruntime's default session against the float model, or
``{"status": "RecordError", "message": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import qdqforge
from qdqforge.errors import RecordError
from tests.reliability.world import net_and_input

NAMES = ("small", "large")


def model_named(name: str):
    model, x = net_and_input(seed=5)
    if name == "large":
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1000.0)
    return model, x


def wait_for(path: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the other flow never reached {path}")
        time.sleep(0.05)


def flow(name: str, record: Path, folder: Path, barrier: Path) -> dict:
    model, x = model_named(name)
    folder.mkdir(parents=True, exist_ok=True)
    config, onnx_file = folder / "config.json", folder / "modified.onnx"
    qdqforge.create_quant_config(str(config), model, x, batch_num=2)
    if name == "large":
        wait_for(barrier / "small_quantized")
    calib = qdqforge.quantize_model(str(config), str(onnx_file), str(record), model, x)
    try:
        if name == "small":
            (barrier / "small_quantized").touch()
            wait_for(barrier / "large_calibrated")
        with torch.no_grad():
            calib(x)
            calib(x)
        if name == "small":
            return {"status": "saved-not", "message": "calibration kept another flow's scale_w"}
        (barrier / "large_calibrated").touch()
        wait_for(barrier / "small_done")
        fake_quant = qdqforge.save_model(str(onnx_file), str(record), str(folder / "net"))[0]
    except RecordError as e:
        return {"status": "RecordError", "message": str(e)}
    finally:
        if name == "small":
            (barrier / "small_done").touch()
    session = ort.InferenceSession(str(fake_quant), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    want = model(x).detach().numpy()
    return {"status": "saved", "error": float(np.linalg.norm(got - want) / np.linalg.norm(want))}


if __name__ == "__main__":
    result = flow(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    print(json.dumps(result))
