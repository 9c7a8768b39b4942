"""qdqforge.analyze on a planted MLP: ranking, weight vs activation, numbers equal numpy.

The numpy reference below re-implements the fake-quant forward from the spec formulas (ARQ
per-tensor weights, asymmetric int8 activations with the report's scale_d/offset_d) on the
model's own float32 weights, and SQNR as ``10 log10(sum r^2 / sum (t - r)^2)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.errors import OutputError
from qdqforge.front.analysis.doctor.channels import ChannelRanges
from qdqforge.front.analysis.doctor.fidelity import Fidelity
from qdqforge.front.analysis.doctor.layer_report import LayerReport
from qdqforge.front.analysis.doctor.report import Report
from qdqforge.front.analysis.doctor.skip import choose_skips, rank_layers
from qdqforge.front.config import load_quant_config
from qdqforge.runtime.calibration.ifmr import ifmr_exact
from tests.helpers.doctor_models import OUTLIER_CHANNEL, mlp_config, mlp_input, planted_mlp
from tests.helpers.sqnr import numpy_sqnr


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doctor")
    model, x = planted_mlp(), mlp_input()
    cfg = mlp_config(tmp / "config.json", model, x)
    return model, x, cfg, qdqforge.analyze(str(cfg), model, x)


def arq_scale(w: np.ndarray) -> np.float32:
    lo, hi = float(w.min()), float(w.max())
    return np.float32(max(abs(lo), abs(hi)) / (128 if abs(lo) > abs(hi) else 127))


def arq_per_tensor(w: np.ndarray) -> np.ndarray:
    scale = arq_scale(w)
    return np.clip(np.rint(w / scale), -128, 127).astype(np.float32) * scale


def fake_quant(x: np.ndarray, scale: float, offset: int) -> np.ndarray:
    s = np.float32(scale)
    return ((np.clip(np.rint(x / s) + offset, -128, 127) - offset) * s).astype(np.float32)


def numpy_forward(model, x, report, act=(), weight=()) -> tuple[np.ndarray, dict]:
    """The MLP in numpy with ``act``/``weight`` layers fake-quantized; also each layer input."""
    h, inputs = x.numpy(), {}
    for name in ("fc1", "fc2", "fc3"):
        layer = getattr(model, name)
        w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        inputs[name] = h
        if name in act:
            h = fake_quant(h, report.layer(name).scale_d, report.layer(name).offset_d)
        h = h @ (arq_per_tensor(w) if name in weight else w).T + b
        h = np.maximum(h, 0) if name != "fc3" else h
    return h, inputs


def test_planted_activation_outlier_ranks_first_and_is_the_only_skip(planted):
    _, _, _, report = planted
    assert report.ranking[0] == "fc2"
    assert report.skip == ("fc2",)
    fc2 = report.layer("fc2")
    assert fc2.channels.outlier_ratio > 100
    assert max(report.layer(n).channels.outlier_ratio for n in ("fc1", "fc3")) < 5
    assert report.with_skips.sqnr_db > report.model.sqnr_db + 10
    assert report.with_skips == fc2.without


def test_weight_and_activation_sensitivity_separate_the_two_plants(planted):
    _, _, _, report = planted
    fc2, fc3, fc1 = report.layer("fc2"), report.layer("fc3"), report.layer("fc1")
    assert (fc2.cause, fc3.cause) == ("activation", "weight")
    assert fc2.weight_only.sqnr_db - fc2.activation_only.sqnr_db > 20
    assert fc3.activation_only.sqnr_db - fc3.weight_only.sqnr_db > 10
    assert min(fc1.weight_only.sqnr_db, fc1.activation_only.sqnr_db) > 40


@pytest.mark.parametrize(
    "layer,act,weight",
    [
        ("model", ("fc1", "fc2", "fc3"), ("fc1", "fc2", "fc3")),
        ("fc2", ("fc2",), ("fc2",)),
        ("fc3-weight", (), ("fc3",)),
        ("fc2-activation", ("fc2",), ()),
        ("fc2-without", ("fc1", "fc3"), ("fc1", "fc3")),
    ],
)
def test_sqnr_and_cosine_equal_numpy(planted, layer, act, weight):
    model, x, _, report = planted
    fidelity = {
        "model": report.model,
        "fc2": report.layer("fc2").quantized,
        "fc3-weight": report.layer("fc3").weight_only,
        "fc2-activation": report.layer("fc2").activation_only,
        "fc2-without": report.layer("fc2").without,
    }[layer]
    ref, _ = numpy_forward(model, x, report)
    test, _ = numpy_forward(model, x, report, act, weight)
    assert fidelity.sqnr_db == pytest.approx(numpy_sqnr(ref, test), abs=0.01)
    r, t = ref.reshape(-1).astype(np.float64), test.reshape(-1).astype(np.float64)
    cosine = r @ t / np.linalg.norm(r) / np.linalg.norm(t)
    assert fidelity.cosine == pytest.approx(cosine, abs=1e-6)
    assert fidelity.rel_l2 == pytest.approx(10 ** (-fidelity.sqnr_db / 20), rel=1e-9)


def test_ranges_and_scales_come_from_the_layer_input(planted):
    model, x, _, report = planted
    _, inputs = numpy_forward(model, x, report)
    fc2 = report.layer("fc2")
    np.testing.assert_allclose(fc2.channels.hi, inputs["fc2"].max(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fc2.channels.lo, inputs["fc2"].min(0), rtol=1e-5, atol=1e-6)
    absmax = np.abs(inputs["fc2"]).max(0)
    assert fc2.channels.outlier_ratio == pytest.approx(absmax.max() / np.median(absmax), rel=1e-5)
    assert int(np.argmax(fc2.channels.hi)) == OUTLIER_CHANNEL
    ifmr = ifmr_exact(torch.from_numpy(inputs["fc2"]))
    assert (fc2.scale_d, fc2.offset_d) == (pytest.approx(ifmr.scale, rel=1e-6), ifmr.offset)
    fc3_scale = arq_scale(model.fc3.weight.detach().numpy())
    assert report.layer("fc3").scale_w == pytest.approx((fc3_scale,), rel=1e-6)
    assert fc2.params_source == "input_data" and fc2.record is None and fc2.balanced is None


def test_skip_config_and_json_round_trip(planted, tmp_path):
    model, x, cfg, report = planted
    path = report.write_skip_config(tmp_path / "skip.json")
    config = load_quant_config(path)
    assert [c.name for c in config.layers if not c.quant_enable] == ["fc2"]
    assert config.layer("fc1") == load_quant_config(cfg).layer("fc1")
    again = qdqforge.analyze(str(path), model, x)
    assert again.disabled == ("fc2",) and [lr.name for lr in again.layers] == ["fc1", "fc3"]
    assert again.model.sqnr_db == pytest.approx(report.with_skips.sqnr_db, abs=1e-9)
    loaded = Report.from_json(report.write_json(tmp_path / "r.json").read_text())
    assert loaded.skip == report.skip and loaded.ranking == report.ranking
    assert loaded.layer("fc2").quantized == report.layer("fc2").quantized
    assert loaded.layer("fc2").channels.outlier_ratio == pytest.approx(
        report.layer("fc2").channels.outlier_ratio, rel=1e-4
    )


def _layer(name: str, sqnr: float) -> LayerReport:
    f = Fidelity(sqnr, 1.0, 10 ** (-sqnr / 20))
    ranges = ChannelRanges(np.zeros(2), np.ones(2))
    return LayerReport(name, "Linear", f, f, f, f, ranges, None, None, 1.0, 0, (1.0,), "input_data")


@pytest.mark.parametrize(
    "sqnrs,skip_db,want",
    [
        ({"a": 40, "b": 41, "c": 30, "d": 33.9, "e": 40.5}, 6, ["c", "d"]),
        ({"a": 40, "b": 41, "c": 30, "d": 34.1, "e": 40.5}, 6, ["c"]),
        ({"a": 40, "b": 40, "c": 40}, 0, ["a", "b", "c"]),
        ({"a": 40, "b": math.inf, "c": -math.inf}, 6, ["c"]),
        ({"a": 10}, 6, []),
    ],
    ids=["two-below", "just-above", "ties-at-zero", "infinities", "single"],
)
def test_skip_rule_is_median_minus_skip_db(sqnrs, skip_db, want):
    layers = [_layer(name, value) for name, value in sqnrs.items()]
    assert choose_skips(layers, skip_db) == want
    assert rank_layers(layers)[: len(want)] == want


@pytest.mark.parametrize("writer", ("write_json", "write_html"))
def test_report_under_a_file_is_an_output_error(planted, tmp_path, writer):
    report = planted[3]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="a_file"):
        getattr(report, writer)(tmp_path / "a_file" / "report.out")
