"""QDQFORGE_PROGRESS=0 turns the calibration progress bar off even on a terminal."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from qdqforge.front.ptq.calibration import CalibrationRecorder, progress_disabled


@pytest.mark.parametrize("setting,shown", (("0", False), ("1", True)))
def test_progress_bar_follows_the_environment(tmp_path, monkeypatch, setting, shown):
    monkeypatch.setenv("QDQFORGE_PROGRESS", setting)
    assert progress_disabled() is (True if setting == "0" else None)
    tty = io.StringIO()
    tty.isatty = lambda: True  # tqdm shows bars on terminals only
    monkeypatch.setattr("sys.stderr", tty)
    recorder = CalibrationRecorder(tmp_path / "r.txt", batch_num=3)
    recorder(nn.Identity(), (torch.zeros(1),), torch.zeros(1))
    assert ("calibration" in tty.getvalue()) is shown
