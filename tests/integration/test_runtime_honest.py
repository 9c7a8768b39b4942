"""Saved models mean, in a default onnxruntime session, what the torch module computed (issue 14).

On a ViT, a MobileNetV3-like net (depthwise, hard-swish, squeeze-excite) and a ResNet-50-shaped
net, PTQ (the calibration module ``quantize_model`` returned) and QAT (two SGD steps):

* the fake-quant model opened with ``ort.InferenceSession(path)`` reproduces the torch module:
  no integer kernel in the graph onnxruntime runs, each layer's integers within one step on at
  most 1e-3 of a tensor's integers (forced, ``runtime_checks``), outputs within 1e-4 of their
  range from the same integers; end to end (free-running) within 1e-3 (measured: <= 4e-7);
* the QDQ model holds the deploy model's integers (int8 weights, int32 biases) and its
  activations agree with the deploy model's (the save-time check's ``qdq_vs_deploy``);
* ``_verify.json`` says passed (or passed with runtime warnings about the QDQ model's int8
  kernels on a CPU without VNNI).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.front.record.file import read_record
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.qat_flow import train, write_config
from tests.helpers.runtime_checks import assert_default_session_reproduces, layer_integers
from tests.helpers.torch_models import build

MODELS = ("vit", "mobilenet", "bottleneck_resnet")
END_TO_END = 1e-3


def ptq_flow(tmp_path, name):
    model, (x,) = build(name)
    model.eval()
    torch.manual_seed(1)
    batches = [x, torch.randn_like(x)]
    cfg = tmp_path / "c.json"
    qdqforge.create_quant_config(str(cfg), model, (x,), batch_num=2)
    calib = run_seed_flow(cfg, tmp_path / "r.txt", tmp_path / "m.onnx", model, batches,
                          with_dmq=False)  # fmt: skip
    paths = qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp_path / "r.txt"),
                                str(tmp_path / "out" / "net"))  # fmt: skip
    return calib, paths, x


def qat_flow(tmp_path, name):
    model, (x,) = build(name)
    cfg = write_config(tmp_path, model, x)
    qat = qdqforge.create_quant_retrain_model(cfg, model, str(tmp_path / "q.txt"), x)
    torch.manual_seed(2)
    train(qat, [torch.randn_like(x) for _ in range(2)], steps=2, lr=0.01)
    paths = qdqforge.save_quant_retrain_model(cfg, qat, str(tmp_path / "q.txt"),
                                              str(tmp_path / "out" / "net"), x)  # fmt: skip
    return qat, paths, x


@pytest.mark.parametrize("flow", [ptq_flow, qat_flow], ids=["ptq", "qat"])
@pytest.mark.parametrize("name", MODELS)
def test_fake_quant_in_a_default_session_is_the_torch_module(tmp_path, name, flow):
    module, paths, x = flow(tmp_path, name)
    error = assert_default_session_reproduces(module, paths.fake_quant, x.numpy())
    assert error <= END_TO_END
    report = json.loads((tmp_path / "out" / "net_verify.json").read_text())
    assert report["status"] in ("passed", "passed_with_runtime_warnings")
    assert all(w["model"] in ("qdq", "deploy") for w in report["runtime_warnings"])


@pytest.mark.parametrize("name", MODELS)
def test_qdq_model_holds_the_deploy_integers(tmp_path, name):
    _, paths, _ = ptq_flow(tmp_path, name)
    qdq, deploy = onnx.load(str(paths.qdq)), onnx.load(str(paths.deploy))
    assert not any(n.op_type in ("ConvInteger", "MatMulInteger") for n in qdq.graph.node)
    layers = read_record(tmp_path / "r.txt")
    for layer in layers:
        a, b = layer_integers(qdq, layer), layer_integers(deploy, layer)
        assert a.keys() == b.keys() and "weight" in a, layer
        deployed = b["weight"]  # a deploy MatMulInteger stores a Linear's weight [Cin, Cout]
        assert np.array_equal(a["weight"], deployed) or np.array_equal(a["weight"], deployed.T)
        if "bias" in a:
            np.testing.assert_array_equal(a["bias"], b["bias"], err_msg=layer)
    report = json.loads((tmp_path / "out" / "net_verify.json").read_text())
    forced = report["comparisons"]["qdq_vs_deploy"]
    assert forced["max_steps"] <= 1 and forced["differ"] <= max(1e-3 * forced["total"], 1)
