"""Sim = deploy on every save: torch vs fake-quant vs QDQ vs deploy on the integer grids.

The seed flow on the small CNN (conv1 -> dw -> grouped -> up (ConvTranspose) -> fc) passes with
no integer differing between the torch module and the fake-quant model and between the QDQ and
deploy models, and writes ``<save_path>_verify.json``. A deploy model broken afterwards (one
scale multiplied by 1.5) is caught by :func:`verify_saved_models`, naming the first tensor after
the fault: a layer's dequant scale breaks the next layer's quantized input; the last layer's
breaks the output. A torch module with one wrong activation scale is caught on that layer's own
integers (torch and ORT integers are compared, not only outputs). Without verification the JSON
says ``unverified``, never an older ``passed``.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.errors import VerificationError
from qdqforge.front.entry.example_inputs import inputs_path, load_example_inputs
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify import verify_saved_models
from qdqforge.front.save.write_models import calibration_reference
from qdqforge.graph import io
from tests.helpers.deploy_flow import model_and_batches, seed_flow
from tests.helpers.model_faults import broken_copy

LAYERS = ("conv1", "dw", "grouped", "up", "fc")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    model, batches = model_and_batches("cnn")
    paths = seed_flow(tmp, model, batches)
    return tmp, paths


def reference(tmp):
    return calibration_reference(io.load(tmp / "m.onnx"), read_record(tmp / "r.txt"))


def test_seed_flow_passes_and_writes_the_report(saved):
    tmp, _ = saved
    report = json.loads((tmp / "net_verify.json").read_text())
    assert report["status"] in ("passed", "passed_with_runtime_warnings") and report["passed"]
    assert report["first_diverging"] is None
    assert report["inputs"] == [{"shape": [2, 3, 8, 8], "dtype": "float32"}]
    comparisons = report["comparisons"]
    assert set(comparisons) == {
        "torch_vs_fake_quant", "fake_quant_vs_qdq", "fake_quant_vs_qdq_bias", "qdq_vs_deploy",
        "torch_vs_fake_quant_session", "deploy_vs_deploy_session", "qdq_vs_qdq_session",
    }  # fmt: skip
    for name in ("torch_vs_fake_quant", "qdq_vs_deploy", "torch_vs_fake_quant_session"):
        got = comparisons[name]
        assert [t["tensor"] for t in got["tensors"]] == [f"{k}.quant.out" for k in LAYERS]
        assert got["max_steps"] == 0 and got["differ"] == 0 and got["total"] > 3000
        assert got["outputs"][0]["max_rel"] < 1e-6 and got["not_compared"] == []
    assert comparisons["torch_vs_fake_quant_session"]["kernels"] == []
    assert comparisons["fake_quant_vs_qdq_bias"]["kind"] == "bias_grid"
    exact = comparisons["fake_quant_vs_qdq"]  # the float biases fed in: round-off only
    assert exact["kind"] == "bias" and exact["max_steps"] <= 1
    assert exact["outputs"][0]["max_rel"] < 1e-6
    assert report["bias_grid_warnings"] == []


@pytest.mark.parametrize(
    "perturbed,named",
    [
        ("dw.dequant_scale", "grouped.quant.out"),
        ("conv1.dequant_scale", "dw.quant.out"),
        ("up.weight_quant.scale", "fc.quant.out"),
        ("fc.dequant_scale", "output"),
    ],
    ids=["dequant_scale", "first_layer", "convtranspose_weight_scale", "last_layer"],
)
def test_broken_deploy_names_the_first_diverging_tensor(saved, perturbed, named):
    tmp, paths = saved
    broken = broken_copy(tmp, paths, perturbed, 1.5)
    x = load_example_inputs(tmp / "m.onnx")
    output = onnx.load(str(broken.fake_quant)).graph.output[0].name
    named = output if named == "output" else named
    out = broken.deploy.parent
    with pytest.raises(VerificationError, match=rf"qdq and deploy disagree: '{named}'"):
        verify_saved_models(broken, x, out / "net", torch_module=reference(tmp))
    report = json.loads((out / "net_verify.json").read_text())
    assert report["status"] == "failed" and report["passed"] is False
    assert report["first_diverging"]["tensor"] == named
    assert report["comparisons"]["torch_vs_fake_quant"]["differ"] == 0


def test_torch_integers_are_compared_not_only_outputs(saved):
    tmp, paths = saved
    module = reference(tmp)
    op = next(m for m in module.modules() if getattr(m, "layer", None) == "grouped")
    op.scale.mul_(1.02)  # moves grouped's integers, hardly its output
    x = load_example_inputs(tmp / "m.onnx")
    with pytest.raises(VerificationError, match=r"torch and fake_quant .*'grouped.quant.out'"):
        verify_saved_models(paths, x, tmp / "t", torch_module=module)


def test_verify_false_says_unverified_and_input_data_overrides(saved, tmp_path):
    tmp, _ = saved
    broken = tmp_path / "m.onnx"
    shutil.copy(tmp / "m.onnx", broken)
    (tmp_path / "a_verify.json").write_text(json.dumps({"status": "passed", "passed": True}))
    qdqforge.save_model(str(broken), str(tmp / "r.txt"), str(tmp_path / "a"), verify=False)
    report = json.loads((tmp_path / "a_verify.json").read_text())
    assert report["status"] == "unverified" and report["passed"] is None  # no stale "passed"
    assert report["reason"] == "verify=False"
    assert (tmp_path / "a_deploy_model.onnx").exists()

    other = torch.rand(5, 3, 8, 8)
    qdqforge.save_model(str(broken), str(tmp / "r.txt"), str(tmp_path / "b"), input_data=other)
    report = json.loads((tmp_path / "b_verify.json").read_text())
    assert report["passed"] and report["samples"] == {"used": 2, "given": 5}  # 2 of input_data
    assert report["inputs"][0]["shape"] == [2, 3, 8, 8]


def test_missing_inputs_warn_and_say_unverified(saved, tmp_path, caplog):
    tmp, _ = saved
    shutil.copy(tmp / "m.onnx", tmp_path / "m.onnx")
    assert not inputs_path(tmp_path / "m.onnx").exists()
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.save.save_model"):
        qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp / "r.txt"), str(tmp_path / "c"))
    assert "skips verification" in caplog.text
    report = json.loads((tmp_path / "c_verify.json").read_text())
    assert report["status"] == "unverified" and "input_data" in report["reason"]


def test_stored_inputs_are_quantize_models_input(saved):
    tmp, _ = saved
    _, batches = model_and_batches("cnn")
    (stored,) = load_example_inputs(tmp / "m.onnx")
    np.testing.assert_array_equal(stored, batches[0][0].numpy())
