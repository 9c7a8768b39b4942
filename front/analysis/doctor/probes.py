"""Switches the doctor puts on each layer of the reimported float model.

:class:`ActivationProbe` replaces the layer's ``ActObserverOp`` once calibration is done: an
identity, or (``quantize``) the fake quantization of the fake-quant model
``x^ = (clamp(round(x / s_d) + o_d, qmin, qmax) - o_d) * s_d`` on the layer's grid (int8
``[-128, 127]``, or int16 ``[-32768, 32767]`` for 16-bit activations; ``kernels.fake_quant_ref``,
the rounding onnxruntime uses). With ``observe`` it records the per-channel min and max of the
layer's input (the balanced ``X / s`` when DMQ is on).

:class:`WeightSwitch` holds a layer's float weight and its ARQ fake-quantized value (the weight
of the modified ONNX) and writes either one into the module's parameter in place.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize
from qdqforge.runtime.kernels.quant_math import int_range


class ActivationProbe(nn.Module):
    """Identity or fake quantization of one layer's input; optional channel range recording.

    Attributes:
        layer: torch name of the layer.
        channel_axis: input-channel axis (1 conv/pool, -1 Linear/MatMul).
        scale, offset: ``scale_d``/``offset_d`` of the layer.
        num_bits: bit width of its activation grid (8 or 16).
        quantize: fake-quantize in the next forwards.
        observe: record per-channel ``lo``/``hi`` in the next forwards.
    """

    def __init__(self, layer: str, channel_axis: int, scale: float, offset: int, num_bits=8):
        super().__init__()
        self.layer, self.channel_axis = layer, channel_axis
        self.scale, self.offset, self.num_bits = float(scale), int(offset), int(num_bits)
        self.grid = int_range(self.num_bits)
        self.quantize, self.observe = False, False
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe:
            self._record(x.detach())
        if not self.quantize:
            return x
        scale = torch.tensor(self.scale, dtype=x.dtype, device=x.device)
        return fake_quantize(x, scale, self.offset, *self.grid)

    def _record(self, x: torch.Tensor) -> None:
        axis = self.channel_axis % x.dim()
        flat = x.movedim(axis, 0).reshape(x.shape[axis], -1).double()
        lo, hi = flat.amin(dim=1).cpu().numpy(), flat.amax(dim=1).cpu().numpy()
        self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else np.maximum(self.hi, hi)


class WeightSwitch:
    """A layer's weight tensor with its float and ARQ values (module docstring)."""

    def __init__(self, tensor: torch.Tensor, quantized: torch.Tensor) -> None:
        self.tensor = tensor
        self.float_value = tensor.detach().clone()
        self.quantized_value = quantized.detach().to(tensor.dtype).clone()
        self.quantized = False

    def set(self, quantized: bool) -> None:
        """Write the ARQ (``quantized``) or the float weight into the module."""
        if quantized == self.quantized:
            return
        self.quantized = quantized
        with torch.no_grad():
            self.tensor.copy_(self.quantized_value if quantized else self.float_value)
