"""The weight scale of a QAT layer with a folded BatchNormalization, floored so that it stays
usable (docs/amct.md §4.6; the int32 bias of docs/amct.md §5).

Per output channel ``c``, with ``g_c = gamma_c / sqrt(var_c + eps)``, ``s_w`` the layer's weight
scale, ``s_d`` its activation scale and ``b'_c = (b_c - mean_c) g_c + beta_c`` the folded bias::

    s'_c = max(s_w_c |g_c|, |b'_c| / (s_d 2^30))        s'_c = 1 when both terms are 0

The first term keeps the integer weight grid (``W'_c / s'_c = sign(g_c) W_c / s_w_c``). It is
(near) 0 where training left gamma at (near) 0 (timm zero-initialises each residual block's last
BN gamma, and a channel that gets no gradient stays there): the deployed accumulator's scale
``s_d s'_c`` would be 0 (search-N divides by it) and the int32 bias ``b'_c / (s_d s'_c)`` would
overflow. The floor acts only where that bias would exceed 2^30 steps (half of int32, room for
the accumulator), so ordinary channels keep ``s_w |g|`` exactly. A floored channel is dominated by
its bias: its weight integers shrink (``round(W'_c / s'_c)``, all 0 when gamma is 0), which moves
its output by at most ``s_d s'_c / 2`` per input integer, i.e. ``|b'_c| 2^-31`` each. A channel
with gamma 0 outputs the constant ``b'_c``, which the int32 bias (``2^30`` steps of ``s_d s'_c``)
holds. The 1 for both terms 0 follows AMCT's rule for a degenerate scale.

One definition, used by search-N (:class:`~qdqforge.runtime.modules.qat_search_n.SearchNOp`)
and by ``save_quant_retrain_model`` (``front.qat_save.fold_scale``), so the recorded scale, the
saved models' weights and int32 bias, and the search-N statistics agree.
"""

from __future__ import annotations

import torch

BIAS_STEPS = 2.0**30  # the int32 bias of a floored channel: at most this many steps


def folded_weight_scale(
    weight_scale: torch.Tensor, factor: torch.Tensor, folded_bias: torch.Tensor, act_scale
) -> torch.Tensor:
    """``[C]`` floored folded weight scale ``s'`` (module docstring).

    Args:
        weight_scale: ``s_w``, ``[C]`` or one value.
        factor: ``|g|``, ``[C]``.
        folded_bias: ``b'``, ``[C]`` (zeros when the layer and the BN have no bias term).
        act_scale: ``s_d``, a scalar (tensor or float).
    """
    scale = weight_scale * factor
    floor = folded_bias.abs() / (act_scale * BIAS_STEPS)
    scale = torch.maximum(scale, floor)
    return torch.where(scale > 0, scale, torch.ones_like(scale))
