"""Models and inputs in float64 are refused by the calls whose outputs are ONNX QDQ models.

ONNX QuantizeLinear takes float32, float16 or bfloat16, not float64, so a float64 model's
fake-quant and deploy models cannot be written; ``save_model`` / ``save_quant_retrain_model``
would fail only after calibration or training. ``quantize_preprocess``, ``quantize_model`` and
``create_quant_retrain_model`` check first and raise :class:`~qdqforge.errors.ModelError`.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.errors import ModelError


def refuse_float64(model: nn.Module, inputs: tuple[torch.Tensor, ...], api: str) -> None:
    """Raise when a parameter, buffer or input of the call is float64.

    Raises:
        ModelError: naming the first float64 tensor and the fix.
    """
    if not isinstance(model, nn.Module):
        return  # the caller's own checks name what it got
    named = [*model.named_parameters(), *model.named_buffers()]
    named += [(f"input_data[{i}]", t) for i, t in enumerate(inputs)]
    for name, tensor in named:
        if tensor.dtype == torch.float64:
            raise ModelError(
                f"{api}: '{name}' is float64; the quantized ONNX models use QuantizeLinear, "
                "which takes float32/float16/bfloat16 only: convert with model.float() and pass "
                "float32 input_data"
            )
