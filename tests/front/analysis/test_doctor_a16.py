"""The doctor with a 16-bit activation layer: it quantizes on the grid the config or record says.

Planted MLP (fc2's input has a 300x outlier channel, no DMQ), ``fc2`` with
``activation_quant_params.num_bits: 16``. Calibrated by the doctor itself, fc2's activation-only
SQNR rises by >= 30 dB over the all-INT8 config (measured 11.7 -> 59.4 dB; a 256x finer step
is +48 dB). From a PTQ record (``act_type`` INT16, an int16 ``offset_d``), the all-layers SQNR
matches the fake-quant model ``save_model`` writes (its fc2 input clipped to the int16 range) in
onnxruntime within ``DOCTOR_VS_ORT_DB`` (measured 2.2e-6 dB; reading that offset on an int8 grid
would wreck it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.front.record.file import read_record
from tests.helpers.doctor_models import (
    DOCTOR_VS_ORT_DB,
    mlp_config,
    mlp_input,
    planted_mlp,
    saved_fake_quant_outputs,
)
from tests.helpers.sqnr import numpy_sqnr


def a16_config(path, model, x, layer: str = "fc2"):
    config = mlp_config(path, model, x)
    tree = json.loads(config.read_text())
    tree[layer]["activation_quant_params"]["num_bits"] = 16
    config.write_text(json.dumps(tree))
    return config


def test_calibrated_16_bit_layer_gains_the_finer_grid(tmp_path):
    model, x = planted_mlp(weight_outlier=False), mlp_input()
    int8 = qdqforge.analyze(str(mlp_config(tmp_path / "a8.json", model, x)), model, x)
    int16 = qdqforge.analyze(str(a16_config(tmp_path / "a16.json", model, x)), model, x)
    assert (int8.layer("fc2").act_bits, int16.layer("fc2").act_bits) == (8, 16)
    assert int16.layer("fc1").act_bits == 8
    gain = int16.layer("fc2").activation_only.sqnr_db - int8.layer("fc2").activation_only.sqnr_db
    assert gain >= 30, gain
    assert int16.layer("fc2").offset_d < -128  # an int16 zero point


def test_record_grid_is_used_and_matches_the_fake_quant_onnx(tmp_path):
    model, x = planted_mlp(weight_outlier=False), mlp_input()
    cfg = a16_config(tmp_path / "c.json", model, x)
    record, onnx_file = tmp_path / "r.txt", tmp_path / "m.onnx"
    with torch.no_grad():
        qdqforge.quantize_model(str(cfg), str(onnx_file), str(record), model, x)(x)
    records = read_record(record)
    assert records["fc2"].act_type == "INT16"
    report = qdqforge.analyze(str(cfg), model, x, str(record))
    fc2 = report.layer("fc2")
    assert (fc2.params_source, fc2.act_bits, fc2.record["act_type"]) == ("record", 16, "INT16")
    assert fc2.offset_d == records["fc2"].offset_d
    with torch.no_grad():
        reference = model(x).numpy()
    for kind, got in saved_fake_quant_outputs(onnx_file, record, tmp_path, x).items():
        ort_sqnr = numpy_sqnr(reference, got)
        assert report.model.sqnr_db == pytest.approx(ort_sqnr, abs=DOCTOR_VS_ORT_DB), kind
    assert np.isfinite(report.model.sqnr_db)
