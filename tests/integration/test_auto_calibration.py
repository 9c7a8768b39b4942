"""accuracy_based_auto_calibration on a small digits CNN with one planted sensitive layer.

The CNN (conv1 -> conv2 -> fc, BN + ReLU) is trained for a few seconds on sklearn's 8x8 digits.
Planted fault: conv1's channel 0 leaves its BN 1000x larger and conv2 reads it 1000x smaller,
so the float model is unchanged but conv2's per-tensor input grid is 1000x too coarse for the
other channels. The evaluator wants top-1 within 1 point of float: reachable only with conv2 in
float. The search must rank conv2 first and end with exactly it rolled back.
Training and the evaluator's forwards run on one torch thread: on a loaded 2-core machine
two threads made the 8 training epochs 30x slower.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError
from qdqforge.front.analysis.auto_calibration import smallest_passing_prefix
from qdqforge.front.config.jsonio import write_json
from qdqforge.front.config.ptq import LayerConfig, QuantConfig, WeightQuantParams
from qdqforge.front.record.file import read_record


class TinyDigitsCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(data.target.astype(np.int64))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:900], order[900:]
    torch.manual_seed(0)
    model = TinyDigitsCnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with one_thread():
        for _ in range(8):
            for idx in train[torch.randperm(900)].split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.eval(), x[train], x[test], y[test]


def planted(trained: TinyDigitsCnn) -> TinyDigitsCnn:
    """A copy of ``trained`` with conv1's channel 0 reaching conv2 1000x larger."""
    model = TinyDigitsCnn()
    model.load_state_dict(trained.state_dict())
    with torch.no_grad():
        model.bn1.weight[0] *= 1000.0
        model.bn1.bias[0] *= 1000.0
        model.conv2.weight[:, 0] /= 1000.0
    return model.eval()


class Evaluator:
    """AMCT's evaluator interface: top-1 in percent, loss in points, pass within 1 point."""

    def __init__(self, x_cal, x_test, y_test) -> None:
        self.x_cal, self.x_test, self.y_test = x_cal, x_test, y_test
        self.evaluated = 0

    def calibration(self, model):
        with torch.no_grad(), one_thread():
            model(self.x_cal[:64])

    def evaluate(self, model):
        self.evaluated += 1
        with torch.no_grad(), one_thread():
            return float((model(self.x_test).argmax(1) == self.y_test).float().mean() * 100)

    def metric_eval(self, original_metric, new_metric):
        loss = original_metric - new_metric
        return loss <= 1.0, loss


def run(tmp_path, model, evaluator, **kwargs):
    fc = LayerConfig("fc", weight_quant_params=WeightQuantParams(channel_wise=False))
    layers = (LayerConfig("conv1"), LayerConfig("conv2"), fc)  # create_quant_config's, sans export
    cfg = write_json(tmp_path / "config.json", QuantConfig(layers=layers).to_dict())
    return qdqforge.accuracy_based_auto_calibration(
        model, evaluator, str(cfg), str(tmp_path / "record.txt"), str(tmp_path / "out" / "net"),
        evaluator.x_cal[:2], **kwargs,
    )  # fmt: skip


def test_planted_layer_is_exactly_the_one_rolled_back(tmp_path, digits):
    model, x_cal, x_test, y_test = digits
    evaluator = Evaluator(x_cal, x_test, y_test)
    paths = run(tmp_path, planted(model), evaluator)

    report = json.loads((tmp_path / "out" / "net_auto_calibration.json").read_text())
    assert report["sensitivity_ranking"][0]["layer"] == "conv2"
    assert report["rolled_back"] == ["conv2"] and report["passed"]
    first, *rest = report["trials"]
    assert first["rolled_back"] == [] and not first["passed"] and first["loss"] > 10
    assert rest[-1]["rolled_back"] == ["conv2"] and rest[-1]["passed"]
    assert report["original_metric"] - report["final_metric"] <= 1.0
    config = json.loads((tmp_path / "out" / "net_quant_config.json").read_text())
    assert [k for k, v in config.items() if isinstance(v, dict) and not v["quant_enable"]] == [
        "conv2"
    ]
    assert sorted(read_record(tmp_path / "record.txt")) == ["conv1", "fc"]
    assert json.loads((tmp_path / "out" / "net_verify.json").read_text())["passed"]
    assert paths.deploy.exists() and evaluator.evaluated == 1 + len(report["trials"])
    assert_report_lists_every_file(report["files"], paths, tmp_path)


def assert_report_lists_every_file(files: dict, paths, tmp_path) -> None:
    """The report's ``files`` names every file the call wrote, the three models included."""
    assert {files[kind] for kind in paths._fields} == {str(p) for p in paths}
    assert files["qdq"] == str(tmp_path / "out" / "net_qdq_model.onnx")
    written = {str(p) for p in (tmp_path / "out").iterdir()} | {str(tmp_path / "record.txt")}
    assert set(files.values()) == written - {str(tmp_path / "out" / "net_auto_calibration.json")}


def test_planting_keeps_the_float_model(digits):
    model, x_cal, _, _ = digits
    with torch.no_grad():
        want, got = model(x_cal), planted(model)(x_cal)
    assert torch.allclose(want, got, atol=1e-3)


@pytest.mark.parametrize(
    "evaluator,kwargs,match",
    [
        (object(), {}, r"lacks calibration, evaluate, metric_eval"),
        (Evaluator(None, None, None), {"strategy": "Greedy"}, r"strategy='Greedy'.*BinarySearch"),
        (Evaluator(None, None, None), {"sensitivity": "Mse"}, r"sensitivity='Mse'.*Cosine"),
    ],
    ids=["no_methods", "strategy", "sensitivity"],
)
def test_bad_arguments_are_config_errors(tmp_path, evaluator, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        qdqforge.accuracy_based_auto_calibration(
            nn.Linear(2, 2), evaluator, "c.json", "r.txt", str(tmp_path / "n"),
            torch.zeros(1, 2), **kwargs,
        )  # fmt: skip
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("needed", [1, 2, 3, 5, 7])
def test_binary_search_finds_the_smallest_prefix(needed):
    calls = []
    found = smallest_passing_prefix(7, lambda k: calls.append(k) or k >= needed)
    assert found == needed and len(calls) <= 4 and 0 not in calls


def test_binary_search_gives_up_when_nothing_passes():
    assert smallest_passing_prefix(7, lambda k: False) is None
    assert smallest_passing_prefix(0, lambda k: True) is None
