"""The save-time check runs on the first ``VerifyBudget.samples`` samples of the example batch.

Only inputs whose dim 0 is the model's symbolic batch axis are cut (the dynamo exporter leaves
dim 0 static where the model fixes it); ``samples=None`` runs them all; where the models cannot
run fewer samples the check runs on the whole batch. A wrong scale is still found on two samples
(the fault tests of the save run with the default budget too).
"""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import VerificationError
from qdqforge.front.config.create import create_quant_config
from qdqforge.front.entry.example_inputs import load_example_inputs
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify import verify_path, verify_saved_models
from qdqforge.front.save.verify_budget import VerifyBudget
from qdqforge.front.save.write_models import calibration_reference
from qdqforge.graph import io
from tests.helpers.model_faults import scaled, tamper
from tests.helpers.ptq_flow import run_seed_flow


class _Net(nn.Module):
    def __init__(self, baked: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)
        self.baked = baked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return self.fc(y.reshape(8, -1) if self.baked else y.flatten(1))


class _WholeBatchOnly(nn.Module):
    """A torch reference that cannot run fewer samples than it was built for."""

    def __init__(self, inner: nn.Module, batch: int) -> None:
        super().__init__()
        self.inner, self.batch = inner, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.batch:
            raise RuntimeError(f"shape '[{self.batch}, -1]' is invalid for this input")
        return self.inner(x)


def _flow(tmp_path, model: nn.Module):
    torch.manual_seed(0)
    batches = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    cfg, record, onnx_file = tmp_path / "c.json", tmp_path / "r.txt", tmp_path / "m.onnx"
    create_quant_config(str(cfg), model, batches[0], batch_num=2)
    run_seed_flow(cfg, record, onnx_file, model, batches, with_dmq=False)
    return onnx_file, record


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The modified ONNX and record of the plain net (each test saves into its own folder)."""
    return _flow(tmp_path_factory.mktemp("calibrated"), _Net().eval())


def _report(save_path) -> dict:
    return json.loads(verify_path(save_path).read_text())


def test_two_of_eight_samples_by_default_all_with_samples_none(calibrated, tmp_path):
    onnx_file, record = calibrated
    qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "two"))
    report = _report(tmp_path / "two")
    assert report["samples"] == {"used": 2, "given": 8}
    assert report["inputs"][0]["shape"] == [2, 3, 8, 8]
    assert report["status"].startswith("passed")
    every = VerifyBudget(samples=None)
    qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "all"), verify=every)
    assert _report(tmp_path / "all")["samples"] == {"used": 8, "given": 8}
    totals = [
        _report(tmp_path / n)["comparisons"]["torch_vs_fake_quant"]["total"] for n in ("two", "all")
    ]
    assert totals[1] == 4 * totals[0]


def test_a_model_that_cannot_run_fewer_samples_is_checked_on_the_whole_batch(
    calibrated, tmp_path, caplog
):
    onnx_file, record = calibrated
    paths = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"), verify=False)
    reference = _WholeBatchOnly(calibration_reference(io.load(onnx_file), read_record(record)), 8)
    with caplog.at_level("INFO", logger="qdqforge.front.save.verify"):
        verdict = verify_saved_models(
            paths, load_example_inputs(onnx_file), str(tmp_path / "net"), torch_module=reference
        )
    assert "could not run on 2 of 8 samples (RuntimeError" in caplog.text
    assert verdict.violation is None
    assert _report(tmp_path / "net")["samples"] == {"used": 8, "given": 8}


def test_a_static_batch_is_not_cut(tmp_path):
    """The dynamo exporter keeps dim 0 static where the model fixes it (``reshape(8, -1)``)."""
    onnx_file, record = _flow(tmp_path, _Net(baked=True).eval())
    dim = onnx.load(onnx_file).graph.input[0].type.tensor_type.shape.dim[0]
    assert (dim.dim_value, dim.dim_param) == (8, "")
    qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"))
    report = _report(tmp_path / "net")
    assert report["samples"] == {"used": 8, "given": 8}
    assert report["status"].startswith("passed")


@pytest.mark.parametrize("model", ["fake_quant", "deploy"])
def test_a_wrong_scale_is_found_on_two_samples(calibrated, tmp_path, model):
    onnx_file, record = calibrated
    paths = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"), verify=False)
    tamper(getattr(paths, model), scaled("fc.quant.scale", 1.05))
    reference = calibration_reference(io.load(onnx_file), read_record(record))
    x = load_example_inputs(onnx_file)
    assert x[0].shape[0] == 8
    with pytest.raises(VerificationError, match=r"'fc\.quant\.out'"):
        verify_saved_models(paths, x, str(tmp_path / "net"), torch_module=reference)
    assert _report(tmp_path / "net")["samples"] == {"used": 2, "given": 8}
