"""The PTQ seed flow up to the saved models, on the small CNN and the torch test models."""

from __future__ import annotations

import onnx
import torch

import qdqforge
from tests.helpers.dmq_flow import build as build_small
from tests.helpers.dmq_flow import write_config
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.torch_models import build as build_test_model

INTEGER_OPS = {"ConvInteger", "MatMulInteger", "MatMulIntegerToFloat", "QLinearConv", "QGemm"}


def seed_flow(tmp_path, model, batches):
    cfg, record, onnx_file = (
        write_config(tmp_path, model, batches[0]),
        tmp_path / "r.txt",
        tmp_path / "m.onnx",
    )
    run_seed_flow(cfg, record, onnx_file, model, batches)
    return qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"))


def model_and_batches(name):
    if name == "cnn":
        model, batches = build_small("cnn")
        return model, [(x,) for x in batches]
    model, (x,) = build_test_model(name)
    torch.manual_seed(1)
    return model.eval(), [(torch.randn_like(x),) for _ in range(2)]


def optimized_ops(tmp_path, path) -> set[str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
