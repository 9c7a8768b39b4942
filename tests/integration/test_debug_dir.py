"""QDQFORGE_DEBUG_DIR: any public API call dumps every pass's stage with no extra code."""

from __future__ import annotations

import json

import torch

import qdqforge
from tests.helpers.dmq_flow import build, write_config


def test_api_calls_dump_each_pipeline_in_order(tmp_path, monkeypatch):
    model, batches = build("cnn")
    cfg = write_config(tmp_path, model, batches[0], dmq=False)
    dumps = tmp_path / "debug"
    monkeypatch.setenv("QDQFORGE_DEBUG_DIR", str(dumps))
    with torch.no_grad():
        qdqforge.quantize_model(
            str(cfg), str(tmp_path / "m.onnx"), str(tmp_path / "r"), model, batches[0]
        )

    folders = sorted(p.name for p in dumps.iterdir())
    assert folders == ["01_canonicalize-fold_bn-apply_balance-arq_weights", "02_act_observe"]
    first = dumps / folders[0]
    log = [json.loads(line) for line in (first / "passlog.jsonl").read_text().splitlines()]
    assert [e["pass"] for e in log] == ["canonicalize", "fold_bn", "apply_balance", "arq_weights"]
    assert log[1]["ops"]["BatchNormalization"] == -1
    assert (first / "02_fold_bn.diff.html").stat().st_size > 1000
    assert (first / "00_input.onnx").exists() and (first / "04_arq_weights.onnx").exists()
