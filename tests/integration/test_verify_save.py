"""Sim = deploy on every save: torch vs fake-quant vs deploy on the integer grids.

The seed flow on the small CNN (conv1 -> dw -> grouped -> up (ConvTranspose) -> fc) passes with
no integer differing and writes ``<save_path>_verify.json``. A deploy model broken afterwards
(one scale multiplied by 1.5) is caught by :func:`verify_saved_models`, naming the first tensor
after the fault: a layer's dequant scale breaks the next layer's quantized input; the last
layer's breaks the output. A torch module with one wrong activation scale is caught on that
layer's own integers (torch and ORT integers are compared, not only outputs).
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
from qdqforge.front.example_inputs import inputs_path, load_example_inputs
from qdqforge.front.verify_save import verify_saved_models
from qdqforge.runtime import reimport
from tests.integration.test_ptq_deploy import model_and_batches, seed_flow


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    model, batches = model_and_batches("cnn")
    paths = seed_flow(tmp, model, batches)
    return tmp, paths


def test_seed_flow_passes_and_writes_the_report(saved):
    tmp, _ = saved
    report = json.loads((tmp / "net_verify.json").read_text())
    assert report["passed"] and report["first_diverging"] is None
    assert report["inputs"] == [{"shape": [2, 3, 8, 8], "dtype": "float32"}]
    for name in ("torch_vs_fake_quant", "fake_quant_vs_deploy"):
        got = report["comparisons"][name]
        tensors = [t["tensor"] for t in got["tensors"]]
        assert tensors == [f"{k}.quant.out" for k in ("conv1", "dw", "grouped", "up", "fc")]
        assert got["max_steps"] == 0 and got["differ"] == 0 and got["total"] > 3000
        assert got["outputs"][0]["max_rel"] < 1e-6 and got["not_compared"] == []


def broken_copy(tmp, paths, tensor: str, factor: float, where: str = "deploy"):
    out = tmp / f"broken_{tensor}"
    out.mkdir(exist_ok=True)
    fake, deploy = out / "fake.onnx", out / "deploy.onnx"
    shutil.copy(paths.fake_quant, fake)
    shutil.copy(paths.deploy, deploy)
    target = deploy if where == "deploy" else fake
    proto = onnx.load(str(target))
    init = next(i for i in proto.graph.initializer if i.name == tensor)
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * factor, tensor))
    onnx.save(proto, str(target))
    return fake, deploy, out


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
    fake, deploy, out = broken_copy(tmp, paths, perturbed, 1.5)
    x = load_example_inputs(tmp / "m.onnx")
    output = onnx.load(str(fake)).graph.output[0].name
    named = output if named == "output" else named
    with pytest.raises(VerificationError, match=rf"fake_quant and deploy .*tensor '{named}'"):
        verify_saved_models(fake, deploy, x, out / "net")
    report = json.loads((out / "net_verify.json").read_text())
    assert not report["passed"]
    assert report["first_diverging"]["tensor"] == named
    assert report["comparisons"]["torch_vs_fake_quant"]["differ"] == 0


def test_torch_integers_are_compared_not_only_outputs(saved):
    tmp, paths = saved
    module = reimport(onnx.load(str(paths.fake_quant)))
    scale = dict(module.named_buffers())["onnx_initializers.grouped_quant_scale"]
    scale.mul_(1.02)  # moves grouped's integers, hardly its output
    x = load_example_inputs(tmp / "m.onnx")
    with pytest.raises(VerificationError, match=r"torch and fake_quant .*'grouped.quant.out'"):
        verify_saved_models(paths.fake_quant, paths.deploy, x, tmp / "t", torch_module=module)


def test_verify_false_skips_and_input_data_overrides(saved, tmp_path):
    tmp, _ = saved
    broken = tmp_path / "m.onnx"
    shutil.copy(tmp / "m.onnx", broken)
    qdqforge.save_model(str(broken), str(tmp / "r.txt"), str(tmp_path / "a"), verify=False)
    assert not (tmp_path / "a_verify.json").exists()
    assert (tmp_path / "a_deploy_model.onnx").exists()

    other = torch.rand(5, 3, 8, 8)
    qdqforge.save_model(str(broken), str(tmp / "r.txt"), str(tmp_path / "b"), input_data=other)
    report = json.loads((tmp_path / "b_verify.json").read_text())
    assert report["passed"] and report["inputs"][0]["shape"] == [5, 3, 8, 8]


def test_missing_inputs_warn_and_skip(saved, tmp_path, caplog):
    tmp, _ = saved
    shutil.copy(tmp / "m.onnx", tmp_path / "m.onnx")
    assert not inputs_path(tmp_path / "m.onnx").exists()
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.ptq_save"):
        qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp / "r.txt"), str(tmp_path / "c"))
    assert "skips verification" in caplog.text
    assert not (tmp_path / "c_verify.json").exists()


def test_stored_inputs_are_quantize_models_input(saved):
    tmp, _ = saved
    _, batches = model_and_batches("cnn")
    (stored,) = load_example_inputs(tmp / "m.onnx")
    np.testing.assert_array_equal(stored, batches[0][0].numpy())
