"""The sensitivity engine: one sweep gives cosine and SQNR; both runners agree on a model.

The planted MLP (fc2: activation outlier, fc3: weight outlier) goes through the PTQ seed flow;
with its record, auto-calibration's onnxruntime runner and the doctor's torch runner each sweep
once. The cosine and SQNR of one sweep must equal the other engine's figures: both quantize the
same layer on the same grids; they differ in the engine (onnxruntime with ORT_DISABLE_ALL vs
torch, float summation order) and in the bias (int32 in ``insert_qdq``, float in the doctor).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdqforge
from qdqforge.front.analysis.doctor.fidelity import Fidelity, fidelity
from qdqforge.front.analysis.layer_sensitivity import (
    OnnxLayerRunner,
    float_graph,
    layer_cosines,
    rank_by_cosine,
)
from qdqforge.front.analysis.sensitivity import Sweep, Variant, rank, sweep
from qdqforge.front.analysis.sensitivity_metrics import (
    CosineSimilarity,
    RelativeL2,
    Sqnr,
    deviation,
)
from qdqforge.front.record.file import read_record
from tests.helpers.doctor_models import mlp_config, mlp_input, planted_mlp
from tests.helpers.ptq_flow import run_seed_flow

LAYERS = ("fc1", "fc2", "fc3")
# Measured between the two runners on this model (no DMQ): SQNR 9.5e-4, 1.5e-3 and 2.1e-2 dB
# (fc1, fc2, fc3); 1 - cosine 0.016 %, 0.063 % and 0.53 % apart. Nearly all of it is the int32
# bias of insert_qdq: fc3's s_d * s_w step is 30x coarse (its weight outlier); the float-bias
# fake-quant model is 1e-5 dB from the doctor (DOCTOR_VS_ORT_DB). 2.4x and 3.8x margins.
RUNNERS_DB, RUNNERS_REL_1_MINUS_COS = 0.05, 0.02


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sensitivity")
    model, x = planted_mlp(), mlp_input()
    cfg = mlp_config(tmp / "c.json", model, x)
    record, onnx_file = tmp / "r.txt", tmp / "m.onnx"
    run_seed_flow(cfg, record, onnx_file, model, [x], with_dmq=False)
    records = read_record(record)
    graph = float_graph(str(cfg), str(record), model, x)
    onnx_sweep = sweep(OnnxLayerRunner(graph, records, x))
    report = qdqforge.analyze(str(cfg), model, x, str(record))
    return onnx_sweep, report, layer_cosines(graph, records, x)


@pytest.mark.parametrize("layer", LAYERS)
def test_one_onnx_sweep_gives_the_doctor_sqnr_and_the_auto_calibration_cosine(sweeps, layer):
    onnx_sweep, report, cosines = sweeps
    doctor = report.layer(layer).quantized
    assert onnx_sweep.values(CosineSimilarity())[layer] == cosines[layer]
    assert onnx_sweep.values(Sqnr())[layer] == pytest.approx(doctor.sqnr_db, abs=RUNNERS_DB)
    distance = 1.0 - onnx_sweep.values(CosineSimilarity())[layer]
    assert distance == pytest.approx(1.0 - doctor.cosine, rel=RUNNERS_REL_1_MINUS_COS)


def test_both_runners_rank_the_planted_layers_alike(sweeps):
    onnx_sweep, report, cosines = sweeps
    assert onnx_sweep.ranking(Sqnr()) == list(report.ranking) == rank_by_cosine(cosines)
    assert report.ranking[0] == "fc2"
    assert onnx_sweep.values(Sqnr())["fc2"] < onnx_sweep.values(Sqnr())["fc1"] - 20


def test_only_the_variants_a_runner_offers_are_swept(sweeps):
    onnx_sweep, _, _ = sweeps
    assert [item.layer for item in onnx_sweep.layers] == list(LAYERS)
    assert onnx_sweep.values(Sqnr(), Variant.WITHOUT) == {}
    assert onnx_sweep.layers[0].value(Sqnr(), Variant.WEIGHT_ONLY) is None


def _old_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The former ``layer_sensitivity.cosine`` / doctor ``_cosine`` on finite vectors."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else float(np.array_equal(a, b))


@pytest.mark.parametrize("seed", range(4))
def test_metrics_equal_the_former_formulas_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(3, 50)).astype(np.float32)
    t = r + rng.normal(scale=10.0 ** -(seed + 1), size=r.shape).astype(np.float32)
    a, b = r.reshape(-1).astype(np.float64), t.reshape(-1).astype(np.float64)
    noise = float(np.dot(b - a, b - a))
    assert CosineSimilarity()(r, t) == _old_cosine(a, b)
    assert Sqnr()(r, t) == 10.0 * math.log10(float(np.dot(a, a)) / noise)
    assert RelativeL2()(r, t) == math.sqrt(noise / float(np.dot(a, a)))
    assert fidelity(r, t) == Fidelity(Sqnr()(r, t), CosineSimilarity()(r, t), RelativeL2()(r, t))


@pytest.mark.parametrize(
    "r, t, want",
    [
        ([0.0, 0.0], [0.0, 0.0], (math.inf, 1.0, 1.0, 0.0)),
        ([0.0, 0.0], [1.0, 0.0], (-math.inf, 0.0, 0.0, math.inf)),
        ([1.0, math.nan], [1.0, math.nan], (math.inf, 1.0, 1.0, 0.0)),
        ([1.0, 2.0], [1.0, math.nan], (-math.inf, -1.0, 0.0, math.inf)),
        ([1.0, math.inf], [1.0, 3.0], (-math.inf, -1.0, 0.0, math.inf)),
    ],
    ids=["both-zero", "zero-reference", "same-nan", "nan-in-test", "inf-in-reference"],
)
def test_edge_cases_are_the_worst_value_never_nan(r, t, want):
    r, t = np.array(r), np.array(t)
    dev = deviation(r, t)
    got = (
        Sqnr().of(dev),
        CosineSimilarity().of(dev),
        CosineSimilarity(on_nonfinite=0.0).of(dev),
        RelativeL2().of(dev),
    )
    assert got == want
    assert fidelity(r, t) == Fidelity(want[0], want[2], want[3])


def test_rank_puts_the_worst_first_and_breaks_ties_by_name():
    values = {"b": 0.5, "a": 0.5, "c": -math.inf, "d": 0.9}
    assert rank(values, Sqnr()) == ["c", "a", "b", "d"]
    assert rank(values, RelativeL2()) == ["d", "a", "b", "c"]
    assert Sweep(()).ranking(CosineSimilarity()) == []
