"""Weight fake quantization for QAT (docs/amct.md §4.5): ``arq_retrain`` and ``ulq_retrain``.

``ArqRetrainWeightOp``: symmetric min-max ARQ grid recomputed from the current weight at every
call, per output channel when ``channel_wise``; straight-through gradient; no quant parameters.

``UlqRetrainWeightOp``: LSQ-style learnable scale ``s = scale_init * exp(scale_log_ratio)``
(:func:`~qdqforge.runtime.kernels.ulq_weight.positive_scale`): ``scale_init`` is the ARQ scale of
the weight the model was built with (a buffer), ``scale_log_ratio`` starts at 0 (the parameter), so
``s`` can never reach 0 or go negative.

Both take the stored weight (Conv ``[Cout, Cin/g, k...]``, Linear ``[Cout, Cin]``, ConvTranspose
``[Cin, Cout/g, k...]`` with ``channel_axis=1`` and ``groups``, MatMul ``[Cin, Cout]`` with
``channel_axis=1``) and return ``(w_q, scale)``: ``scale`` (detached, ``[C]`` or ``[1]``) feeds
the search-N op; ARQ computes it only in eval mode, where search-N reads it.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.runtime.kernels.ulq_dispatch import arq_retrain_fake_quant, ulq_weight_fake_quant
from qdqforge.runtime.kernels.ulq_weight import positive_scale, ulq_weight_init


class ArqRetrainWeightOp(nn.Module):
    """``arq_retrain`` weight fake quantization (module docstring)."""

    def __init__(
        self, layer: str, num_bits: int, channel_wise: bool, channel_axis: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.layer, self.num_bits, self.channel_wise = layer, num_bits, channel_wise
        self.channel_axis, self.groups = channel_axis, groups
        self.weight_name: str | None = None  # ONNX name of the weight it reads (for the record)

    def forward(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_q = arq_retrain_fake_quant(
            w, self.num_bits, self.channel_wise, self.channel_axis, self.groups
        )
        return w_q, None if self.training else self.scale(w)

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        """The ARQ scale of ``w`` (``[C]`` or ``[1]``), as the forward uses it."""
        return ulq_weight_init(
            w.detach(), self.num_bits, self.channel_wise, self.channel_axis, self.groups
        )

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, num_bits={self.num_bits}, channel_wise={self.channel_wise}"


class UlqRetrainWeightOp(nn.Module):
    """``ulq_retrain`` weight fake quantization with a learnable positive scale."""

    def __init__(
        self, layer: str, num_bits: int, init_scale: torch.Tensor, channel_axis: int = 0,
        groups: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.layer, self.num_bits = layer, num_bits
        self.channel_axis, self.groups = channel_axis, groups
        self.weight_name: str | None = None
        self.register_buffer("scale_init", init_scale.detach().clone().float())
        self.scale_log_ratio = nn.Parameter(torch.zeros_like(self.scale_init))

    def forward(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scale()
        w_q = ulq_weight_fake_quant(w, s, self.num_bits, self.channel_axis, self.groups)
        return w_q, s.detach()

    def scale(self, w: torch.Tensor | None = None) -> torch.Tensor:
        """The learned scale ``scale_init * exp(scale_log_ratio)`` (``w`` is ignored)."""
        return positive_scale(self.scale_init, self.scale_log_ratio)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, num_bits={self.num_bits}, channels={self.scale_init.numel()}"
