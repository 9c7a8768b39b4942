"""DMQ balance factors (docs/amct.md §4.4), SmoothQuant-style, per input channel ``j``::

    a_j = max |X| over every axis but the channel axis (running max over batches)
    w_j = max |W| over every weight that reads input channel j
    s_j = a_j^alpha / w_j^(1 - alpha)                         (a_j > 0 and w_j > 0)
    s_j = a_j / max_k(a_k / s_k)      when w_j = 0            (X/s peaks like the busiest channel)
    s_j = max_k(w_k * s_k) / w_j      when a_j = 0            (W*s peaks like the busiest channel)
    s_j = 1                           when both are 0, or when no channel has both nonzero
    (the maxima run over channels with a_k > 0 and w_k > 0)

Applied as ``W' = W * s`` (on the Cin axis) and ``X' = X / s``. The spec requires
``FLT_EPSILON < s_j < 1/FLT_EPSILON``. Where a factor leaves that range, a ``w_j`` or
``a_j`` that is negligible, at most ``FLT_EPSILON`` times the layer's largest, counts as zero and
takes the zero rules, and a channel whose ``a_j`` is then 0 gets its factor clamped into the range
(``X_j / s_j = 0`` whatever ``s_j``: the factor cannot change the layer). Pretrained nets need
this: EfficientNet-Lite0 reads dead channels (``a_j = 0`` on calibration data) through weights of
5e-10 to 1e-6 beside 8.3, and the ``a_j = 0`` rule gave them factors up to 8e9. Any other
factor outside the range is not clamped (a clamped factor would silently break the balance the
user asked for): it raises ``CalibrationError`` naming the layer and channels, suggesting a
different ``migration_strength`` or ``skip_layers``.

Weight layouts: Conv ``[Cout, Cin/g, k...]`` (input channel ``j`` of group ``j // (Cin/g)`` is
read by that group's ``Cout/g`` filters), ConvTranspose ``[Cin, Cout/g, k...]``, Linear/Gemm
``[Cout, Cin]``, MatMul ``[Cin, Cout]``.
"""

from __future__ import annotations

import torch

from qdqforge.errors import CalibrationError, QuantizationError
from qdqforge.runtime.kernels.quant_math import FLT_EPSILON, check_finite


def input_channel_absmax(x: torch.Tensor, channel_axis: int = 1) -> torch.Tensor:
    """``max |x|`` per channel of ``channel_axis`` (1 for conv inputs, -1 for Linear)."""
    axis = channel_axis % x.dim()
    dims = [d for d in range(x.dim()) if d != axis]
    return x.detach().abs().amax(dim=dims) if dims else x.detach().abs()


def weight_input_channel_absmax(w: torch.Tensor, op_type: str, groups: int = 1) -> torch.Tensor:
    """``max |W|`` per input channel for a Conv/ConvTranspose/Linear/Gemm/MatMul weight.

    Raises:
        QuantizationError: unknown ``op_type`` or channels that do not split into ``groups``.
    """
    w = w.detach().abs()
    if op_type.startswith("ConvTranspose"):
        return w.reshape(w.shape[0], -1).amax(dim=1)
    if op_type.startswith("Conv"):
        if w.shape[0] % groups:
            raise QuantizationError(f"{op_type}: Cout {w.shape[0]} not divisible by {groups}")
        per_group = w.reshape(groups, w.shape[0] // groups, w.shape[1], -1)
        return per_group.amax(dim=(1, 3)).reshape(-1)
    if op_type in ("Linear", "Gemm"):
        return w.amax(dim=0)
    if op_type == "MatMul":
        return w.amax(dim=1)
    raise QuantizationError(f"DMQ: no weight layout for op type '{op_type}'")


def _zero_channel_factors(act: torch.Tensor, wgt: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    regular = (act > 0) & (wgt > 0)
    if not bool(regular.any()):
        return torch.ones_like(act)
    act_peak = (act / s)[regular].max()
    wgt_peak = (wgt * s)[regular].max()
    s = torch.where((wgt == 0) & (act > 0), act / act_peak, s)
    s = torch.where((act == 0) & (wgt > 0), wgt_peak / wgt, s)
    return torch.where((act == 0) & (wgt == 0), torch.ones_like(s), s)


def balance_factors(
    act_max: torch.Tensor, weight_max: torch.Tensor, alpha: float = 0.5, layer: str | None = None
) -> torch.Tensor:
    """``tensor_balance_factor`` per input channel (module docstring), float32.

    Args:
        act_max: ``[Cin]`` max |X| per input channel.
        weight_max: ``[Cin]`` max |W| per input channel.
        alpha: migration strength in [0, 1] (AMCT accepts 0.2..0.8).
        layer: layer name for errors.

    Returns:
        ``[Cin]`` float32 factors on ``act_max``'s device.

    Raises:
        QuantizationError: shapes differ or alpha is outside [0, 1].
        CalibrationError: NaN/inf statistics, or a factor outside (FLT_EPSILON, 1/FLT_EPSILON).
    """
    if act_max.shape != weight_max.shape or not 0.0 <= alpha <= 1.0:
        raise QuantizationError(
            f"layer '{layer}': DMQ needs equal [Cin] statistics and 0 <= alpha <= 1, got "
            f"{tuple(act_max.shape)}, {tuple(weight_max.shape)}, alpha={alpha}"
        )
    check_finite(act_max, layer, "activation max")
    act, wgt = act_max.double(), weight_max.double().to(act_max.device)
    s = _factors(act, wgt, alpha)
    if bool(_out_of_range(s).any()):
        act, wgt = _negligible_as_zero(act, wgt, s)
        s = _factors(act, wgt, alpha)
        idle = act == 0  # X_j / s_j = 0 whatever s_j: the factor cannot change the layer
        s = torch.where(idle, s.clamp(2 * FLT_EPSILON, 0.5 / FLT_EPSILON), s)
    _check_bounds(s, layer)
    return s.float()


def _factors(act: torch.Tensor, wgt: torch.Tensor, alpha: float) -> torch.Tensor:
    safe = torch.where(wgt > 0, wgt, torch.ones_like(wgt))
    return _zero_channel_factors(act, wgt, act.pow(alpha) / safe.pow(1.0 - alpha))


def _out_of_range(s: torch.Tensor) -> torch.Tensor:
    return (s <= FLT_EPSILON) | (s >= 1.0 / FLT_EPSILON)


def _negligible_as_zero(
    act: torch.Tensor, wgt: torch.Tensor, s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, w)`` with 0 where a factor is out of range and its ``a_j``/``w_j`` negligible."""
    out = _out_of_range(s)
    tiny_a = out & (act <= FLT_EPSILON * act.max())
    tiny_w = out & (wgt <= FLT_EPSILON * wgt.max())
    zero = torch.zeros_like(act)
    return torch.where(tiny_a, zero, act), torch.where(tiny_w, zero, wgt)


def _check_bounds(s: torch.Tensor, layer: str | None) -> None:
    bad = torch.nonzero(_out_of_range(s)).reshape(-1)
    if bad.numel():
        shown = ", ".join(f"{int(c)}: {float(s[c]):.3g}" for c in bad[:5])
        raise CalibrationError(
            f"layer '{layer}': DMQ balance factors must lie in ({FLT_EPSILON:.3g}, "
            f"{1 / FLT_EPSILON:.3g}); channel {shown} ({bad.numel()} in all). Lower/raise "
            f"migration_strength or add '{layer}' to skip_layers"
        )


class DmqObserver:
    """Running per-input-channel ``max |X|`` over any number of forwards."""

    def __init__(self, channel_axis: int = 1, layer: str | None = None) -> None:
        self.channel_axis, self.layer = channel_axis, layer
        self.absmax: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Fold one batch into the running maximum.

        Raises:
            CalibrationError: the batch holds NaN or inf.
        """
        check_finite(x, self.layer)
        batch = input_channel_absmax(x, self.channel_axis)
        self.absmax = batch if self.absmax is None else torch.maximum(self.absmax, batch)

    def compute(self, weight_max: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
        """Balance factors from the running maximum (see :func:`balance_factors`).

        Raises:
            CalibrationError: no batch was seen, or factors out of bounds.
        """
        if self.absmax is None:
            raise CalibrationError(f"layer '{self.layer}': DMQ saw no forward pass")
        return balance_factors(self.absmax, weight_max, alpha, self.layer)
