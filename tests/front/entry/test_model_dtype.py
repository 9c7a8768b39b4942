"""float64, float16 and bfloat16 models and inputs are refused up front by the calls whose results
end as quantized ONNX models (entry/model_dtype.py): a ModelError naming the tensor and its type,
before any export or file write. Integer inputs (token ids) pass."""

from __future__ import annotations

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
    "quantize_preprocess": lambda d, m, x: qdqforge.quantize_preprocess(
        str(d / "c.json"), str(d / "r.txt"), m, x
    ),
    "quantize_model": lambda d, m, x: qdqforge.quantize_model(
        str(d / "c.json"), str(d / "m.onnx"), str(d / "r.txt"), m, x
    ),
    "create_quant_retrain_model": lambda d, m, x: qdqforge.create_quant_retrain_model(
        str(d / "c.json"), m, str(d / "r.txt"), x
    ),
    "analyze": lambda d, m, x: qdqforge.analyze(str(d / "c.json"), m, x),
    "accuracy_based_auto_calibration": lambda d, m, x: qdqforge.accuracy_based_auto_calibration(
        m, NeverCalled(), str(d / "c.json"), str(d / "r.txt"), str(d / "out"), x
    ),
}


@pytest.mark.parametrize("api", list(CALLS))
def test_float64_model_is_refused(tmp_path, api):
    model, x = small_model(), torch.randn(2, 3, 6, 6)
    qdqforge.create_quant_config(str(tmp_path / "c.json"), model, x)  # a valid float32 config
    with pytest.raises(ModelError, match=rf"{api}: '0.weight' is float64"):
        CALLS[api](tmp_path, model.double(), x.double())
    with pytest.raises(ModelError, match=r"'input_data\[0\]' is float64"):
        CALLS[api](tmp_path, small_model(), x.double())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # nothing written


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("api", list(CALLS))
def test_half_precision_model_is_refused(tmp_path, api, dtype):
    model, x = small_model(), torch.randn(2, 3, 6, 6)
    qdqforge.create_quant_config(str(tmp_path / "c.json"), model, x)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ModelError, match=rf"{api}: '0.weight' is {name}; .*model.float\(\)"):
        CALLS[api](tmp_path, small_model().to(dtype), x.to(dtype))
    with pytest.raises(ModelError, match=rf"'input_data\[0\]' is {name}"):
        CALLS[api](tmp_path, small_model(), x.to(dtype))
    half_buffer = small_model()
    half_buffer.register_buffer("table", torch.zeros(3, dtype=dtype))
    with pytest.raises(ModelError, match=rf"'table' is {name}"):
        CALLS[api](tmp_path, half_buffer, x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # nothing written


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
