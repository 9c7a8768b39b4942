"""analyze with a record from the PTQ seed flow (DMQ on): the doctor simulates the saved model.

Seed flow on the planted MLP with DMQ (alpha 0.5): quantize_preprocess -> quantize_model -> one
calibration forward. The doctor then takes the record's factors and scale_d/offset_d; its
all-layers SQNR must match the fake-quant model ``save_model`` writes, in onnxruntime's default
session and with optimizations off, within ``DOCTOR_VS_ORT_DB`` (measured 1.0e-5 dB), and DMQ
must flatten fc2's planted outlier channel: ``X / s`` with ``s_j = sqrt(a_j / w_j)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.front.record.file import read_record
from tests.helpers.doctor_models import (
    DOCTOR_VS_ORT_DB,
    OUTLIER_CHANNEL,
    mlp_config,
    mlp_input,
    planted_mlp,
    saved_fake_quant_outputs,
)
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.sqnr import numpy_sqnr

ALPHA = 0.5


@pytest.fixture(scope="module")
def seed_flow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doctor_record")
    model, x = planted_mlp(weight_outlier=False), mlp_input()
    cfg = mlp_config(tmp / "c.json", model, x, ALPHA)
    record, onnx_file = tmp / "r.txt", tmp / "m.onnx"
    run_seed_flow(cfg, record, onnx_file, model, [x])
    report = qdqforge.analyze(str(cfg), model, x, str(record))
    saved = saved_fake_quant_outputs(onnx_file, record, tmp, x)
    return model, x, read_record(record), saved, report


def test_record_parameters_are_used_and_shown(seed_flow):
    _, _, records, _, report = seed_flow
    for layer in report.layers:
        rec = records[layer.name]
        assert layer.params_source == "record"
        assert (layer.scale_d, layer.offset_d) == (rec.scale_d, rec.offset_d)
        assert layer.record["scale_w"] == list(rec.scale_w)
        assert layer.scale_w == pytest.approx(rec.scale_w, rel=1e-6)


@pytest.mark.parametrize("kind", ["default session", "ORT_DISABLE_ALL"])
def test_all_layers_quantized_matches_the_saved_fake_quant_model(seed_flow, kind):
    model, x, _, saved, report = seed_flow
    with torch.no_grad():
        reference = model(x).numpy()
    ort_sqnr = numpy_sqnr(reference, saved[kind])
    assert report.model.sqnr_db == pytest.approx(ort_sqnr, abs=DOCTOR_VS_ORT_DB)
    assert report.model.sqnr_db > 35


def test_dmq_flattens_the_outlier_channel(seed_flow):
    model, x, _, _, report = seed_flow
    with torch.no_grad():
        h1 = torch.relu(model.fc1(x)).numpy().astype(np.float64)
    fc2 = report.layer("fc2")
    np.testing.assert_allclose(fc2.channels.hi, h1.max(0), rtol=1e-5, atol=1e-6)
    a, w = np.abs(h1).max(0), np.abs(model.fc2.weight.detach().numpy()).max(0)
    regular = np.arange(a.size) != OUTLIER_CHANNEL  # its weights are 0: the w_j = 0 rule
    s = a[regular] ** ALPHA / w[regular] ** (1 - ALPHA)
    np.testing.assert_allclose(fc2.balanced.hi[regular], h1.max(0)[regular] / s, rtol=1e-4)
    assert fc2.channels.outlier_ratio > 100 and fc2.balanced.outlier_ratio < 2
    assert fc2.dmq_alpha == ALPHA and report.skip == ()
