"""analyze with a record from the PTQ seed flow (DMQ on): the doctor simulates the saved model.

Seed flow on the planted MLP with DMQ (alpha 0.5): quantize_preprocess -> quantize_model -> one
calibration forward. The doctor then takes the record's factors and scale_d/offset_d; its
all-layers SQNR must match the fake-quant QDQ model (insert_qdq on the modified ONNX, run in
onnxruntime) within 0.05 dB (the QDQ model's bias is on the int32 grid, the doctor's is float),
and DMQ must flatten fc2's planted outlier channel: ``X / s`` with ``s_j = sqrt(a_j / w_j)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.front.record import read_record
from qdqforge.graph import io, numerics
from qdqforge.passes.base import PassContext
from qdqforge.passes.pipeline import run_pipeline
from tests.front.doctor_models import OUTLIER_CHANNEL, mlp_config, mlp_input, planted_mlp
from tests.front.test_doctor import numpy_sqnr
from tests.helpers.ptq_flow import run_seed_flow

ALPHA = 0.5


@pytest.fixture(scope="module")
def seed_flow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doctor_record")
    model, x = planted_mlp(weight_outlier=False), mlp_input()
    cfg = mlp_config(tmp / "c.json", model, x, ALPHA)
    record, onnx_file = tmp / "r.txt", tmp / "m.onnx"
    run_seed_flow(cfg, record, onnx_file, model, [x])
    report = qdqforge.analyze(str(cfg), model, x, str(record))
    return model, x, read_record(record), onnx_file, report


def fake_quant_output(onnx_file, records, x) -> np.ndarray:
    ctx = PassContext(options={"insert_qdq": {"records": records}})
    proto = io.to_proto(run_pipeline(io.load(onnx_file), ("insert_qdq",), ctx=ctx).graph)
    return numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]


def test_record_parameters_are_used_and_shown(seed_flow):
    _, _, records, _, report = seed_flow
    for layer in report.layers:
        rec = records[layer.name]
        assert layer.params_source == "record"
        assert (layer.scale_d, layer.offset_d) == (rec.scale_d, rec.offset_d)
        assert layer.record["scale_w"] == list(rec.scale_w)
        assert layer.scale_w == pytest.approx(rec.scale_w, rel=1e-6)


def test_all_layers_quantized_matches_the_fake_quant_onnx(seed_flow):
    model, x, records, onnx_file, report = seed_flow
    with torch.no_grad():
        reference = model(x).numpy()
    ort_sqnr = numpy_sqnr(reference, fake_quant_output(onnx_file, records, x))
    assert report.model.sqnr_db == pytest.approx(ort_sqnr, abs=0.05)
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
