"""Catalogue rows: ``input_data`` and models the engine cannot take, ONNX graphs it cannot run.

``input_data`` goes wrong twice: in the public call (export) and in the batches fed to the
returned calibration module afterwards; both must say which input and what was expected.
"""

from __future__ import annotations

import copy

import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

import qdqforge
from qdqforge.errors import (
    ExportError,
    GraphError,
    InputDataError,
    ModelError,
    UnsupportedOpsError,
)
from tests.reliability.catalogue import Case


class DataDependent(nn.Module):
    """Takes one of two Linear layers depending on the sign of the input's sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else self.b(x)


def _quantize_with(make_input):
    return lambda w: w.quantize(w.config, x=make_input(w))


def _preprocess_with(make_input):
    def call(w):
        record = w.tmp / "dmq.txt"
        return qdqforge.quantize_preprocess(str(w.dmq_config), str(record), w.model, make_input(w))

    return call


def _calibrate_with(make_batch):
    def call(w):
        calib = w.quantize(w.config)
        with torch.no_grad():
            return calib(*make_batch(w))

    return call


def _input(name, call, error, match, what) -> Case:
    return Case(f"input:{name}", what, call, error, match)


def _graph_with(op: str, domain: str = "") -> onnx.ModelProto:
    value = helper.make_tensor_value_info
    node = helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_0", domain=domain)
    graph = helper.make_graph(
        [node], "g", [value("x", TensorProto.FLOAT, [3, 3])], [value("y", TensorProto.FLOAT, None)]
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def _meta(w):
    return w.x.to("meta")


CASES = [
    _input("list", _quantize_with(lambda w: [w.x]), InputDataError, "tuple(input_data)", "list"),
    _input("dict", _quantize_with(lambda w: {"x": w.x}), InputDataError, "keys ['x']", "dict"),
    _input(
        "none",
        lambda w: qdqforge.quantize_model(
            str(w.config), str(w.tmp / "m.onnx"), str(w.tmp / "r.txt"), w.model, None
        ),
        InputDataError,
        "received None",
        "None",
    ),
    _input("none-preprocess", _preprocess_with(lambda w: None), InputDataError, "None", "None"),
    _input("empty-tuple", _quantize_with(lambda w: ()), InputDataError, "empty tuple", "()"),
    _input("tuple-of-int", _quantize_with(lambda w: (w.x, 3)), InputDataError, "item 1", "(x, 3)"),
    _input(
        "shape",
        _quantize_with(lambda w: torch.randn(2, 5, 6, 6)),
        ExportError,
        "to have 3 channels, but got 5",
        "5 channels for a 3-channel conv",
    ),
    _input("rank", _quantize_with(lambda w: w.x[0]), ExportError, "expected 4D input", "3-D"),
    _input(
        "dtype",
        _quantize_with(lambda w: w.x.long()),
        ExportError,
        "Input type (long int) and bias type (float)",
        "int64 input to a float model",
    ),
    _input("device", _quantize_with(_meta), ExportError, "device meta", "input on another device"),
    _input(
        "model-not-module",
        lambda w: w.quantize(w.config, model=lambda x: x),
        ExportError,
        "model must be a torch.nn.Module; received function",
        "a function instead of a module",
    ),
    _input(
        "data-dependent-control-flow",
        lambda w: qdqforge.create_quant_config(
            str(w.tmp / "c.json"), DataDependent().eval(), torch.randn(2, 4)
        ),
        ExportError,
        "data-dependent control flow",
        "a model branching on a tensor value",
    ),
    _input(
        "model-float16",
        lambda w: w.quantize(w.config, model=copy.deepcopy(w.model).half(), x=w.x.half()),
        ModelError,
        "quantize_model: 'conv.weight' is float16",
        "a float16 model and input (PTQ)",
    ),
    _input(
        "model-bfloat16-qat",
        lambda w: qdqforge.create_quant_retrain_model(
            str(w.qat_config), copy.deepcopy(w.model).bfloat16(), str(w.tmp / "r.txt"), w.x
        ),
        ModelError,
        "create_quant_retrain_model: 'conv.weight' is bfloat16",
        "a bfloat16 model (QAT)",
    ),
    _input(
        "input-float16",
        _preprocess_with(lambda w: w.x.half()),
        ModelError,
        "quantize_preprocess: 'input_data[0]' is float16",
        "a float16 input_data beside a float32 model (DMQ)",
    ),
    _input(
        "calib-shape",
        _calibrate_with(lambda w: (torch.randn(2, 5, 6, 6),)),
        InputDataError,
        "input 0 has shape (2, 5, 6, 6)",
        "a calibration batch with 5 channels",
    ),
    _input(
        "calib-dtype",
        _calibrate_with(lambda w: (w.x.double(),)),
        InputDataError,
        "input 0 has dtype torch.float64",
        "a float64 calibration batch",
    ),
    _input(
        "calib-device",
        _calibrate_with(lambda w: (_meta(w),)),
        InputDataError,
        "input 0 is on meta",
        "a calibration batch on another device",
    ),
    _input(
        "calib-list",
        _calibrate_with(lambda w: ([w.x],)),
        InputDataError,
        "input 0 is a list",
        "a list fed to the calibration module",
    ),
    _input(
        "calib-count",
        _calibrate_with(lambda w: (w.x, w.x)),
        InputDataError,
        "2 inputs",
        "two inputs to a one-input model",
    ),
    _input(
        "unsupported-op",
        lambda w: qdqforge.reimport(_graph_with("Det")),
        UnsupportedOpsError,
        "Det",
        "an op the runtime has no converter for",
    ),
    _input(
        "custom-domain-op",
        lambda w: qdqforge.reimport(_graph_with("Frob", "com.acme")),
        UnsupportedOpsError,
        "com.acme",
        "a custom-domain op",
    ),
    _input(
        "reimport-missing-file",
        lambda w: qdqforge.reimport(w.tmp / "none.onnx"),
        GraphError,
        "none.onnx",
        "an ONNX path that does not exist",
    ),
    _input(
        "reimport-not-onnx",
        lambda w: qdqforge.reimport(w.write("bad.onnx", b"\x00garbage")),
        GraphError,
        "bad.onnx",
        "a file that is not ONNX",
    ),
]
