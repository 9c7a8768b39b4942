"""``qdqforge::ActQuant``: an activation quantizer with a fixed grid (pass ``act_quant``).

The node carries ``layer``, ``scale``, ``offset`` and ``num_bits``; it becomes an
:class:`ActQuantOp` that returns ``x`` fake-quantized on that grid with the same kernel call the
calibration module's observers make once calibrated (``fake_quantize``), and exposes
``quant_grid()`` so the save-time check reads its integers.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.graph.qdqforge_ops import ACT_QUANT, DOMAIN
from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize
from qdqforge.runtime.kernels.quant_math import int_range
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


class ActQuantOp(nn.Module):
    """Fake quantization of one layer's input on a recorded grid.

    Attributes:
        layer: torch name of the quantized layer.
        offset: zero point on the ``num_bits`` grid.
        num_bits: 8, or 16 for AMCT's A16W8.
    """

    def __init__(self, layer: str, scale: float, offset: int, num_bits: int) -> None:
        super().__init__()
        self.layer, self.offset, self.num_bits = layer, int(offset), int(num_bits)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quantize(x, self.scale.to(x), self.offset, *int_range(self.num_bits))

    def quant_grid(self) -> tuple[float, int]:
        """``(scale, offset)`` of the grid the output lies on."""
        return float(self.scale), self.offset


@converter(ACT_QUANT.op, versions=(1,), domain=DOMAIN)
def convert_act_quant(node: OnnxNode, emit: Emitter):
    op = ActQuantOp(
        node.attr("layer"),
        float(node.attr("scale")),
        int(node.attr("offset")),
        int(node.attr("num_bits", 8)),
    )
    return emit.module(op, emit.value(0))
