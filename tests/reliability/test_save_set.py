"""One save writes one consistent set of files (issue 16, class 2; ``graph/staged.py``).

A folder holds a complete, verified save (fake-quant, QDQ, deploy, ``_verify.json`` passed). A
second save of a differently calibrated record then meets:

* a full disk (``ENOSPC`` from ``fsync``) while its deploy model is written: an OutputError
  naming the deploy path; every old file byte for byte as it was, no temp file left;
* a rename that fails half-way through the set: an OutputError naming that file, and the
  report says ``unverified`` (it is written before the first rename);
* SIGINT (a real signal, delivered while onnxruntime runs the verification): the new set is
  in place and the report says ``unverified`` until a verification finishes.

The disk is filled by injection because mounting a small tmpfs needs privileges CI lacks.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

import qdqforge
from qdqforge.errors import OutputError
from tests.reliability.world import net_and_input

MODELS = ("net_fake_quant_model.onnx", "net_qdq_model.onnx", "net_deploy_model.onnx")
FILES = (*MODELS, "net_verify.json")


def calibrated(folder: Path, gain: float) -> tuple[Path, Path]:
    """``quantize_model`` + two calibration batches scaled by ``gain``: (modified ONNX, record)."""
    model, x = net_and_input(seed=7)
    folder.mkdir(parents=True)
    config, onnx_file, record = folder / "c.json", folder / "m.onnx", folder / "r.txt"
    qdqforge.create_quant_config(str(config), model, x, batch_num=2)
    calib = qdqforge.quantize_model(str(config), str(onnx_file), str(record), model, x)
    with torch.no_grad():
        calib(x * gain)
        calib(x * gain)
    return onnx_file, record


@pytest.fixture
def old_and_new(tmp_path):
    """``out/`` holding a verified save of one calibration; the (onnx, record) of another."""
    out = tmp_path / "out"
    onnx_old, record_old = calibrated(tmp_path / "old", 1.0)
    qdqforge.save_model(str(onnx_old), str(record_old), str(out / "net"))
    assert json.loads((out / "net_verify.json").read_text())["passed"] is True
    return out, calibrated(tmp_path / "new", 3.0)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_disk_full_while_writing_the_deploy_model_keeps_the_old_set(old_and_new, monkeypatch):
    out, (onnx_new, record_new) = old_and_new
    before, real_fsync = snapshot(out), os.fsync

    def fsync(fd):
        if "net_deploy_model" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError, match=r"net_deploy_model\.onnx"):
        qdqforge.save_model(str(onnx_new), str(record_new), str(out / "net"))
    assert snapshot(out) == before  # old set, old report, and no temp file


def test_a_rename_failing_mid_set_leaves_the_report_unverified(old_and_new, monkeypatch):
    out, (onnx_new, record_new) = old_and_new
    real_replace, moved = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(".onnx"):
            if moved:  # the set's second model
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match=r"net_deploy_model\.onnx"):
        qdqforge.save_model(str(onnx_new), str(record_new), str(out / "net"))
    report = json.loads((out / "net_verify.json").read_text())
    assert report["status"] == "unverified" and report["passed"] is None, report
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # temps removed
    assert [Path(p).name for p in moved] == ["net_fake_quant_model.onnx"]


def test_sigint_during_verification_leaves_the_new_set_unverified(old_and_new, monkeypatch):
    out, (onnx_new, record_new) = old_and_new
    before, real_run = snapshot(out), ort.InferenceSession.run

    def run(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises KeyboardInterrupt
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    # Python's own handler, as an interactive user's process has it: a runner started as a
    # background job of a non-interactive shell inherits SIGINT ignored, and Python keeps that
    # (this stop's CI clones launched with `&` failed here: the save ran to its end).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            qdqforge.save_model(str(onnx_new), str(record_new), str(out / "net"))
    finally:
        signal.signal(signal.SIGINT, inherited)
    after = snapshot(out)
    assert sorted(after) == sorted(FILES)
    assert all(after[name] != before[name] for name in MODELS)  # the new set, all of it
    report = json.loads(after["net_verify.json"])
    assert report["status"] == "unverified" and report["passed"] is None, report
    assert "not finished" in report["reason"]
