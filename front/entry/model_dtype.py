"""Models and inputs in a floating type other than float32 are refused by the calls whose
outputs are quantized ONNX models.

* float64: ONNX QuantizeLinear takes float32, float16 or bfloat16, not float64, so the
  fake-quant, QDQ and deploy models cannot be written.
* float16 / bfloat16: calibration statistics, AMCT's search algorithms (IFMR, HFMG, ARQ), the
  QAT kernels and the save verification run in float32; in half precision ``x / s`` carries a
  relative error up to 2^-11 (bfloat16: 2^-8), so ``round(x / s)`` would differ from the integers
  a float32 runtime computes for the saved models wherever ``x / s`` is near a half-integer.
  float16 and bfloat16 values convert to float32 exactly, so quantizing ``model.float()`` loses
  nothing of the trained model.

Without this check ``save_model`` / ``save_quant_retrain_model`` would fail (or, worse, verify
a different arithmetic) only after calibration or training, so ``quantize_preprocess``,
``quantize_model``, ``create_quant_retrain_model``, ``analyze`` and
``accuracy_based_auto_calibration`` check first and raise
:class:`~qdqforge.errors.ModelError` naming the first such tensor, before anything is exported
or written. Integer inputs (token ids, masks) are not floating and pass.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.errors import ModelError

REFUSED_FLOATS = {torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def refuse_non_float32(model: nn.Module, inputs: tuple[torch.Tensor, ...], api: str) -> None:
    """Raise when a parameter, buffer or input of the call is float64, float16 or bfloat16.

    Raises:
        ModelError: naming the first such tensor, its type and the fix.
    """
    if not isinstance(model, nn.Module):
        return  # the caller's own checks name what it got
    named = [*model.named_parameters(), *model.named_buffers()]
    named += [(f"input_data[{i}]", t) for i, t in enumerate(inputs)]
    for name, tensor in named:
        dtype = REFUSED_FLOATS.get(getattr(tensor, "dtype", None))
        if dtype is not None:
            raise ModelError(f"{api}: '{name}' is {dtype}; {_why(dtype)}")


def _why(dtype: str) -> str:
    if dtype == "float64":
        return (
            "the quantized ONNX models use QuantizeLinear, which takes float32/float16/bfloat16 "
            "only: convert with model.float() and pass float32 input_data"
        )
    return (
        "qdqforge calibrates, trains and verifies quantization in float32 (in half precision "
        "round(x / s) is not the runtime's integers): quantize model.float() with float32 "
        "input_data (float16/bfloat16 weights convert to float32 exactly)"
    )
