"""``BatchNormOp``: torch BatchNorm behaviour on tensors the parameter store owns.

The weight, bias and running stats live at the original torch paths (``bn1.weight``, ...), so
this module holds no state itself; it only knows momentum/eps and follows ``self.training``
exactly like ``nn.BatchNorm*d``: batch statistics and running-stat updates in ``train()``.

``stats_frozen`` (set by :func:`qdqforge.freeze_bn_stats`) makes a training forward behave like
an eval forward: normalize with the running statistics and leave them untouched, while the
affine ``weight``/``bias`` still get gradients. It survives ``train()``/``eval()`` calls; it is a
training-recipe switch, not state, so it is not in the ``state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BatchNormOp(nn.Module):
    """Stateless BatchNorm; ``momentum`` is torch's (1 - ONNX momentum)."""

    _is_impure = True  # updates running stats in place: never dead-code eliminated

    def __init__(self, momentum: float, eps: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.stats_frozen = False

    def forward(
        self,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        running_mean: torch.Tensor,
        running_var: torch.Tensor,
        num_batches_tracked: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch_stats = self.training and not self.stats_frozen
        if batch_stats and num_batches_tracked is not None:
            num_batches_tracked.add_(1)
        return F.batch_norm(
            x,
            running_mean,
            running_var,
            weight,
            bias,
            batch_stats,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        frozen = ", stats_frozen=True" if self.stats_frozen else ""
        return f"momentum={self.momentum}, eps={self.eps}{frozen}"
