"""Fused QAT fake quantization: the autograd Functions that launch :mod:`.ulq_triton`'s kernels.

Same values and gradients as the references in :mod:`.ulq` (the CPU path and the ground truth;
module docstrings there hold the math), in one pass over the tensor per direction:

* :class:`FusedUlqActFakeQuant`: ULQ activation; the clip gradients come from per-block partial
  sums ``E, S_u, S_l`` as ``G = E / L``, ``dclip_max = G + S_u``, ``dclip_min = S_l - G``.
* :class:`FusedArqRetrainFakeQuant`: arq_retrain on the channel-major ``(C, K)`` weight; the
  ARQ scale is torch's (``aminmax`` + C-sized ops), the grid one kernel pass; STE backward.
* :class:`FusedUlqWeightFakeQuant`: ulq_retrain; ``dL/ds[c] = factor * sum_k partials[c, k]``.

Scale, offset and clip thresholds are computed by torch on the device in the reference's dtypes
and cast to ``x``'s dtype (as torch's type promotion does for 0-d operands): no host sync. Only
contiguous float32/float64 tensors are launched (:mod:`.ulq_dispatch` checks the dtype).
"""

from __future__ import annotations

import torch
import triton

from qdqforge.runtime.kernels import ulq_triton as kernels
from qdqforge.runtime.kernels.arq import arq_scale
from qdqforge.runtime.kernels.quant_math import divide, int_range
from qdqforge.runtime.kernels.ulq import ulq_scale_offset

BLOCK = 1024
IEEE = {"enable_fp_fusion": False}  # no FMA contraction: the arithmetic the references do


def fake_quant_rows(x: torch.Tensor, scale: torch.Tensor, offset, num_bits: int) -> torch.Tensor:
    """``clamp(rint(x / s[row]), qmin - o, qmax - o) * s[row]`` over ``scale.numel()`` rows."""
    x = x.contiguous()
    y = torch.empty_like(x)
    n, (qmin, qmax) = x.numel(), int_range(num_bits)
    if n == 0:
        return y
    grid = (triton.cdiv(n, BLOCK),)
    kernels.fake_quant_fwd_kernel[grid](
        x, y, scale, scale if offset is None else offset, n, max(n // scale.numel(), 1),
        qmin=qmin, qmax=qmax, per_row=scale.numel() > 1, has_offset=offset is not None,
        block=BLOCK, **IEEE,
    )  # fmt: skip
    return y


def ulq_act_params(clip_max, clip_min, num_bits: int, dtype: torch.dtype) -> torch.Tensor:
    """``[s, o, lo, hi, clip_max, clip_min]`` in ``dtype`` (the thresholds as the reference's)."""
    qmin, qmax = int_range(num_bits)
    s, o = ulq_scale_offset(clip_max, clip_min, num_bits)
    lo, hi = s * (qmin - o), s * (qmax - o)
    return torch.stack([t.reshape(()) for t in (s, o, lo, hi, clip_max, clip_min)]).to(dtype)


class FusedUlqActFakeQuant(torch.autograd.Function):
    """ULQ activation fake-quant, fused forward and backward (module docstring)."""

    @staticmethod
    def forward(ctx, x, clip_max, clip_min, num_bits: int):
        params = ulq_act_params(clip_max.detach(), clip_min.detach(), num_bits, x.dtype)
        ctx.save_for_backward(x, params)
        ctx.num_bits = num_bits
        ctx.clip_meta = [(c.shape, c.dtype) for c in (clip_max, clip_min)]
        return fake_quant_rows(x, params[0:1], params[1:2], num_bits)

    @staticmethod
    def backward(ctx, grad):
        x, params = ctx.saved_tensors
        x, grad = x.contiguous(), grad.contiguous()
        grad_x, n = torch.empty_like(x), x.numel()
        nblocks = triton.cdiv(n, BLOCK)
        parts = torch.empty(3, nblocks, dtype=x.dtype, device=x.device)
        if n:
            kernels.ulq_act_bwd_kernel[(nblocks,)](
                x, grad, grad_x, params, parts, n, block=BLOCK, **IEEE
            )
        e, s_up, s_low = parts.sum(dim=1).unbind()
        g = divide(e, 2**ctx.num_bits - 1)
        (max_shape, max_dtype), (min_shape, min_dtype) = ctx.clip_meta
        grad_max = (g + s_up).reshape(max_shape).to(max_dtype)
        grad_min = (s_low - g).reshape(min_shape).to(min_dtype)
        need = ctx.needs_input_grad
        return grad_x if need[0] else None, grad_max, grad_min if need[2] else None, None


class FusedArqRetrainFakeQuant(torch.autograd.Function):
    """arq_retrain on a channel-major ``(C, K)`` weight: fused grid, identity backward."""

    @staticmethod
    def forward(ctx, m, num_bits: int, channel_wise: bool):
        scale = arq_scale(m.detach(), num_bits, channel_wise).to(m.dtype)
        return fake_quant_rows(m, scale, None, num_bits)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class FusedUlqWeightFakeQuant(torch.autograd.Function):
    """ulq_retrain on a channel-major ``(C, K)`` weight with a ``[C]`` scale, fused."""

    @staticmethod
    def forward(ctx, m, scale, num_bits: int, grad_factor: float):
        ctx.save_for_backward(m, scale)
        ctx.num_bits, ctx.factor = num_bits, grad_factor
        return fake_quant_rows(m, scale.contiguous(), None, num_bits)

    @staticmethod
    def backward(ctx, grad):
        m, scale = ctx.saved_tensors
        m, grad = m.contiguous(), grad.contiguous()
        rows, row_len = m.shape
        grad_m, col_blocks = torch.empty_like(m), triton.cdiv(row_len, BLOCK)
        parts = torch.empty(rows, col_blocks, dtype=m.dtype, device=m.device)
        qmin, qmax = int_range(ctx.num_bits)
        if m.numel():
            kernels.ulq_weight_bwd_kernel[(rows, col_blocks)](
                m, grad, grad_m, scale.contiguous(), parts, row_len,
                qmin=qmin, qmax=qmax, block=BLOCK, **IEEE,
            )  # fmt: skip
        grad_s = parts.sum(dim=1) * ctx.factor
        return grad_m, grad_s.to(scale.dtype), None, None
