"""Catalogue rows: data and weights calibration cannot quantize, and calibration cut short.

NaN/inf activations, all-zero (zero-range) activations, a bias beyond int32 on the
``scale_d * scale_w`` grid, fewer than ``batch_num`` calibration batches, weights shared by two
layers. Each error names the layer.
"""

from __future__ import annotations

import torch
from torch import nn

import qdqforge
from qdqforge.errors import CalibrationError, ConfigError, QuantizationError
from tests.reliability.catalogue import Case


class SharedWeights(nn.Module):
    """Linear ``a`` and ``b`` share one weight tensor; ``c`` has its own."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class AllShared(nn.Module):
    """Linear ``a`` and ``b`` share one weight tensor and are the only layers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 6)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class HugeBias(nn.Module):
    """A Linear whose bias is ~1e13 steps of ``scale_d * scale_w``: no int32 holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.fc.weight.uniform_(-1e-3, 1e-3)
            self.fc.bias.fill_(1e6)

    def forward(self, x):
        return self.fc(x)


def _calibrate(batches, model=None, config=None):
    """quantize_model + forwards of ``batches(w)`` + save_model, all in the case folder."""

    def call(w):
        xs = batches(w)
        cfg = config(w, model) if config else w.config
        calib = w.quantize(cfg, model, xs[0])
        with torch.no_grad():
            for x in xs:
                calib(x)
        return qdqforge.save_model(
            str(w.tmp / "m.onnx"), str(w.tmp / "record.txt"), str(w.tmp / "out" / "net")
        )

    return call


def _own_config(w, model):
    path = w.tmp / "own.json"
    qdqforge.create_quant_config(str(path), model, torch.randn(2, 4), batch_num=2)
    return path


def _with(value: float, index=(0, 0, 0, 0)):
    def batches(w):
        x = w.x.clone()
        x[index] = value
        return [x, w.x]

    return batches


def _no_forward(w):
    w.quantize(w.config)
    return qdqforge.save_model(
        str(w.tmp / "m.onnx"), str(w.tmp / "record.txt"), str(w.tmp / "out" / "net")
    )


def _quantize_mlp(model_type: type[nn.Module], name: str, config: str):
    """``quantize_model`` of a fresh ``model_type`` (input ``[2, 6]``) under JSON ``config``."""
    return lambda w: w.quantize(w.write(name, config), model_type(), torch.randn(2, 6))


def _numeric(name, call, error, match, what) -> Case:
    return Case(f"numeric:{name}", what, call, error, match)


CASES = [
    _numeric("nan", _calibrate(_with(float("nan"))), CalibrationError, "layer 'conv'", "one NaN"),
    _numeric("inf", _calibrate(_with(float("inf"))), CalibrationError, "1 of 216", "one +inf"),
    _numeric(
        "zero-range",
        _calibrate(lambda w: [w.x * 0, w.x * 0]),
        CalibrationError,
        "layer 'conv': every calibration activation was",
        "all-zero calibration data (constant activations)",
    ),
    _numeric(
        "int32-bias",
        _calibrate(lambda w: [torch.randn(2, 4), torch.randn(2, 4)], HugeBias(), _own_config),
        QuantizationError,
        "layer 'fc'",
        "a bias of ~1e13 int32 steps",
    ),
    _numeric(
        "too-few-batches",
        _calibrate(lambda w: [w.x]),
        CalibrationError,
        "calibration saw 1 of batch_num=2 batches",
        "1 calibration batch where batch_num is 2",
    ),
    _numeric(
        "no-batches",
        _no_forward,
        CalibrationError,
        "saw 0 of batch_num=2",
        "save_model right after quantize_model, no calibration forward",
    ),
    _numeric(
        "shared-weights",
        _quantize_mlp(
            SharedWeights, "shared.json", '{"batch_num": 1, "b": {"quant_enable": true}}'
        ),
        ConfigError,
        "b.quant_enable: got True; allowed: false (layer shares its weight with a)",
        "two Linear layers sharing one weight, one enabled",
    ),
    _numeric(
        "no-layer-enabled",
        _quantize_mlp(AllShared, "none.json", '{"batch_num": 1, "b": {"quant_enable": false}}'),
        ConfigError,
        "quantize_model: no layer is enabled in",
        "every layer shares its weight (nothing to quantize; save_model blamed the batches)",
    ),
    _numeric(
        "no-layer-enabled-qat",
        lambda w: qdqforge.create_quant_retrain_model(
            str(w.write("none.json", '{"a": {"retrain_enable": false}}')),
            AllShared(),
            str(w.tmp / "r.txt"),
            torch.randn(2, 6),
        ),
        ConfigError,
        "a (shares its weight with b: weight sharing cannot be quantized)",
        "QAT with every layer sharing its weight",
    ),
]
