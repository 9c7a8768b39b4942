"""``SearchNOp``: identity after a QAT layer that gathers search-N statistics (docs/amct.md §4.6).

In eval mode, per output channel ``c`` of the deployed (BN-folded) layer::

    deq[c] = scale_d * scale_w[c]                                     (no BN)
    deq[c] = scale_d * s'_c                      (folded BN: s' of runtime.kernels.folded_scale,
             s_w |gamma_c / sqrt(var_c + eps)| floored by the folded bias |b'_c| / (s_d 2^30))
    s32    = round(y / deq[c])                   y: the layer output, after that BN when present

and the ``[16, C]`` shift errors of :func:`~qdqforge.runtime.kernels.search_n.shift_errors` are
summed into the ``error`` buffer (all-reduced over DDP ranks first); ``shifts()`` gives the
argmin ``N`` per channel. With the BN in eval mode, ``y`` is exactly the folded layer's output.
Statistics only describe the current weights: the first eval forward after a training forward
starts them afresh. Training forwards and forwards before the activation clips exist pass ``y``
through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from qdqforge.errors import QdqforgeError
from qdqforge.runtime import distributed
from qdqforge.runtime.kernels.fake_quant_ref import per_axis
from qdqforge.runtime.kernels.folded_scale import folded_weight_scale
from qdqforge.runtime.kernels.search_n import MAX_SHIFT, SearchNObserver
from qdqforge.runtime.modules.qat_act import REPLICA_ERROR


class SearchNOp(nn.Module):
    """Search-N statistics of one layer (module docstring)."""

    def __init__(
        self,
        layer: str,
        channels: int,
        channel_axis: int,
        bn_epsilon: float | None = None,
        bias_beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.layer, self.channels, self.channel_axis = layer, channels, channel_axis
        self.bn_epsilon, self.bias_beta = bn_epsilon, bias_beta  # bias_beta: a Gemm's beta
        self.register_buffer("error", torch.zeros(MAX_SHIFT, channels, dtype=torch.float64))
        self.register_buffer("batches", torch.tensor(0, dtype=torch.int64))
        self._stale = False
        self.paused = False  # see statistics_paused

    def forward(self, y, act_scale, weight_scale, *bn_and_bias) -> torch.Tensor:
        """``bn_and_bias``: with a folded BN its ``gamma, var, beta, mean`` and the layer's bias
        (absent when the layer has none)."""
        if self.training:
            if not self._stale:  # nn.Module.__setattr__ costs ~1 us per training step otherwise
                self._stale = True
        elif act_scale is not None and weight_scale is not None and not self.paused:
            self._accumulate(y, self.deq_scale(act_scale, weight_scale, *bn_and_bias))
        return y

    def deq_scale(
        self, act_scale, weight_scale, bn_weight=None, bn_var=None, bn_bias=None, bn_mean=None,
        layer_bias=None,
    ) -> torch.Tensor:  # fmt: skip
        """``[C]`` dequantization scale of the deployed layer's int32 accumulator."""
        weight_scale = weight_scale.expand(self.channels)
        if bn_weight is None or self.bn_epsilon is None:
            return act_scale * weight_scale
        g = bn_weight / torch.sqrt(bn_var + self.bn_epsilon)
        bias = torch.zeros_like(g) if layer_bias is None else layer_bias * self.bias_beta
        folded_bias = (bias - bn_mean) * g + bn_bias
        return act_scale * folded_weight_scale(weight_scale, g.abs(), folded_bias, act_scale)

    @torch.no_grad()
    def _accumulate(self, y: torch.Tensor, deq: torch.Tensor) -> None:
        if getattr(self, "_is_replica", False):
            raise QdqforgeError(REPLICA_ERROR.format(layer=self.layer, what="search-N statistics"))
        if self._stale:
            self.reset()
        batch = SearchNObserver(self.channels, self.channel_axis, self.layer)
        batch.update(torch.round(y / per_axis(y, deq.to(y.dtype), self.channel_axis)))
        self.error += distributed.all_reduce_sum(batch.error)
        self.batches += 1

    @torch.no_grad()
    def reset(self) -> None:
        """Forget the statistics gathered so far."""
        self.error.zero_()
        self.batches.zero_()
        self._stale = False

    @property
    def has_statistics(self) -> bool:
        """True when eval forwards ran since the last training forward."""
        return not self._stale and int(self.batches) > 0

    def shifts(self) -> torch.Tensor:
        """``shift_bit`` per output channel (``[C]`` int64 in 1..16).

        Raises:
            CalibrationError: no eval forward reached this op.
        """
        observer = SearchNObserver(self.channels, self.channel_axis, self.layer)
        observer.error, observer.batches = self.error, int(self.batches)
        return observer.compute()

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, channels={self.channels}, axis={self.channel_axis}"


@contextmanager
def statistics_paused(module: nn.Module) -> Iterator[None]:
    """Eval forwards inside neither compute nor add search-N statistics (the save's check)."""
    ops = [op for op in module.modules() if isinstance(op, SearchNOp)]
    for op in ops:
        op.paused = True
    try:
        yield
    finally:
        for op in ops:
            op.paused = False
