"""float64, float16 and bfloat16 models and inputs are refused up front by every public call that
takes a model to quantize (front/entry/model_dtype.py), all through the one entry prelude
(front/prelude.py): a ModelError naming the call, the tensor and its type, before any
export or file write. Integer inputs (token ids) pass."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ModelError


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


class NeverCalled:
    """An auto-calibration evaluator: the refusal must come before the first evaluation."""

    def calibration(self, model):
        raise AssertionError("calibration ran")

    def evaluate(self, model):
        raise AssertionError("evaluate ran")

    def metric_eval(self, original_metric, new_metric):
        raise AssertionError("metric_eval ran")


CALLS = {
    "create_quant_config": lambda d, m, x: qdqforge.create_quant_config(str(d / "c2.json"), m, x),
    "create_quant_retrain_config": lambda d, m, x: qdqforge.create_quant_retrain_config(
        str(d / "q2.json"), m, x
    ),
    "quantize_preprocess": lambda d, m, x: qdqforge.quantize_preprocess(
        str(d / "c.json"), str(d / "r.txt"), m, x
    ),
    "quantize_model": lambda d, m, x: qdqforge.quantize_model(
        str(d / "c.json"), str(d / "m.onnx"), str(d / "r.txt"), m, x
    ),
    "create_quant_retrain_model": lambda d, m, x: qdqforge.create_quant_retrain_model(
        str(d / "c.json"), m, str(d / "r.txt"), x
    ),
    "restore_quant_retrain_model": lambda d, m, x: qdqforge.restore_quant_retrain_model(
        str(d / "c.json"), m, str(d / "r.txt"), x, str(d / "ckpt.pth")
    ),
    "analyze": lambda d, m, x: qdqforge.analyze(str(d / "c.json"), m, x),
    "accuracy_based_auto_calibration": lambda d, m, x: qdqforge.accuracy_based_auto_calibration(
        m, NeverCalled(), str(d / "c.json"), str(d / "r.txt"), str(d / "out"), x
    ),
}
# Public calls with a ``model`` parameter that are not quantization entry points: ``export`` is
# the engine's building block (any float type exports), ``rewrite`` and ``reimport`` take an
# ONNX model, the last two the QAT module create_quant_retrain_model returned.
NOT_ENTRY_POINTS = {"export", "rewrite", "reimport", "save_quant_retrain_model", "freeze_bn_stats"}
WRITTEN_BEFORE = ["c.json", "ckpt.pth"]


def write_inputs(folder: Path, model: nn.Module, x: torch.Tensor) -> None:
    """A valid float32 PTQ config and an (empty) QAT checkpoint, the files the calls read."""
    qdqforge.create_quant_config(str(folder / "c.json"), model, x)
    torch.save({}, folder / "ckpt.pth")


def raised_in_prelude(caught: pytest.ExceptionInfo) -> bool:
    """The error came through front/prelude.py (the one definition of the checks)."""
    files = [Path(entry.path).as_posix() for entry in caught.traceback]
    return any(file.endswith("front/prelude.py") for file in files)


def test_every_public_call_taking_a_model_is_checked():
    public = {name for name in dir(qdqforge) if not name.startswith("_")}
    takes_model = {
        name
        for name in public
        if callable(getattr(qdqforge, name)) and "model" in _parameters(getattr(qdqforge, name))
    }
    assert takes_model - NOT_ENTRY_POINTS == set(CALLS)


def _parameters(function) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # classes and builtins without a signature
        return []


@pytest.mark.parametrize("api", list(CALLS))
def test_float64_model_is_refused(tmp_path, api):
    model, x = small_model(), torch.randn(2, 3, 6, 6)
    write_inputs(tmp_path, model, x)
    with pytest.raises(ModelError, match=rf"{api}: '0.weight' is float64") as caught:
        CALLS[api](tmp_path, model.double(), x.double())
    assert raised_in_prelude(caught)
    with pytest.raises(ModelError, match=r"'input_data\[0\]' is float64") as caught:
        CALLS[api](tmp_path, small_model(), x.double())
    assert raised_in_prelude(caught)
    assert sorted(p.name for p in tmp_path.iterdir()) == WRITTEN_BEFORE  # nothing written


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("api", list(CALLS))
def test_half_precision_model_is_refused(tmp_path, api, dtype):
    model, x = small_model(), torch.randn(2, 3, 6, 6)
    write_inputs(tmp_path, model, x)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ModelError, match=rf"{api}: '0.weight' is {name}; .*model.float\(\)"):
        CALLS[api](tmp_path, small_model().to(dtype), x.to(dtype))
    with pytest.raises(ModelError, match=rf"'input_data\[0\]' is {name}"):
        CALLS[api](tmp_path, small_model(), x.to(dtype))
    half_buffer = small_model()
    half_buffer.register_buffer("table", torch.zeros(3, dtype=dtype))
    with pytest.raises(ModelError, match=rf"'table' is {name}") as caught:
        CALLS[api](tmp_path, half_buffer, x)
    assert raised_in_prelude(caught)
    assert sorted(p.name for p in tmp_path.iterdir()) == WRITTEN_BEFORE  # nothing written


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.fc = nn.Embedding(10, 8), nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(ids))


def test_integer_inputs_pass(tmp_path):
    model, ids = Embedder().eval(), torch.randint(0, 10, (2, 5))
    qdqforge.create_quant_config(str(tmp_path / "c.json"), model, ids)
    paths = [str(tmp_path / name) for name in ("c.json", "m.onnx", "r.txt")]
    qdqforge.quantize_model(*paths, model, ids)
    assert (tmp_path / "m.onnx").is_file()
