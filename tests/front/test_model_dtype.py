"""float64 models and inputs are refused up front by the calls whose results end as ONNX QDQ
(front/model_dtype.py): a ModelError naming the tensor, before any export or file write."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ModelError


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


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
