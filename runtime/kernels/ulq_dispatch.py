"""Backend choice for QAT fake quantization: fused Triton kernels on CUDA, the references elsewhere.

The three entry points take the arguments of their :mod:`.ulq` namesakes and pick, per call::

    fused (ulq_fused)  <=>  tensor.device.type in FUSED_DEVICES ("cuda")
                            and tensor.dtype in (float32, float64)
                            and _round is torch.round (the gradcheck hook stays on the reference)
                            and QDQFORGE_FUSED != "0"
                            and triton imports
    reference (ulq)    otherwise: CPU, half/bfloat16 (AMP), no triton, QDQFORGE_FUSED=0

Triton is optional: it is imported on the first fused call only, so the package and every CPU path
work without it. Both backends give the same forward values and gradients (tests/runtime/
test_ulq_triton.py, under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from types import ModuleType

import torch

from qdqforge.runtime.kernels import ulq
from qdqforge.runtime.kernels.arq import from_channel_major, to_channel_major
from qdqforge.runtime.kernels.quant_math import int_range

logger = logging.getLogger(__name__)

ENV_SWITCH = "QDQFORGE_FUSED"
FUSED_DEVICES = {"cuda"}  # tests add "cpu" to run the kernels under TRITON_INTERPRET=1
FUSED_DTYPES = (torch.float32, torch.float64)


@functools.cache
def _fused_module() -> ModuleType | None:
    try:
        from qdqforge.runtime.kernels import ulq_fused
    except ImportError as e:
        logger.info("fused QAT kernels unavailable (%s); using the torch reference", e)
        return None
    return ulq_fused


def fused_backend(t: torch.Tensor, _round: ulq.Round = torch.round) -> ModuleType | None:
    """:mod:`.ulq_fused` when ``t`` takes the fused path (module docstring), else None."""
    if _round is not torch.round or t.device.type not in FUSED_DEVICES:
        return None
    if t.dtype not in FUSED_DTYPES or os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    return _fused_module()


def ulq_act_fake_quant(
    x, clip_max, clip_min=None, num_bits: int = 8, fixed_min: bool = False, *, _round=torch.round
) -> torch.Tensor:
    """:func:`.ulq.ulq_act_fake_quant`, fused on CUDA."""
    fused = fused_backend(x, _round)
    if fused is None:
        return ulq.ulq_act_fake_quant(x, clip_max, clip_min, num_bits, fixed_min, _round=_round)
    if fixed_min or clip_min is None:
        clip_min = torch.zeros_like(clip_max).detach()
    return fused.FusedUlqActFakeQuant.apply(x, clip_max, clip_min, num_bits)


def _channel_major(w, per_channel: bool, channel_axis: int, groups: int) -> torch.Tensor:
    return to_channel_major(w, channel_axis, groups) if per_channel else w.reshape(1, -1)


def arq_retrain_fake_quant(
    w, num_bits=8, channel_wise=True, channel_axis=0, groups=1, *, _round=torch.round
) -> torch.Tensor:
    """:func:`.ulq.arq_retrain_fake_quant`, fused on CUDA."""
    fused = fused_backend(w, _round)
    if fused is None:
        return ulq.arq_retrain_fake_quant(
            w, num_bits, channel_wise, channel_axis, groups, _round=_round
        )
    m = _channel_major(w, channel_wise, channel_axis, groups)
    out = fused.FusedArqRetrainFakeQuant.apply(m, num_bits, channel_wise)
    return from_channel_major(out, w.shape, channel_axis if channel_wise else 0, groups)


def ulq_weight_fake_quant(
    w, scale, num_bits=8, channel_axis=0, groups=1, *, _round=torch.round, grad_factor=None
) -> torch.Tensor:
    """:func:`.ulq.ulq_weight_fake_quant`, fused on CUDA (LSQ factor ``1/sqrt(K qmax)``)."""
    fused = fused_backend(w, _round)
    if fused is None:
        return ulq.ulq_weight_fake_quant(
            w, scale, num_bits, channel_axis, groups, _round=_round, grad_factor=grad_factor
        )
    per_channel = scale.numel() > 1
    m = _channel_major(w, per_channel, channel_axis, groups)
    factor = 1.0 / math.sqrt(m.shape[1] * int_range(num_bits)[1])
    factor = factor if grad_factor is None else grad_factor
    out = fused.FusedUlqWeightFakeQuant.apply(m, scale.to(m.dtype), num_bits, factor)
    return from_channel_major(out, w.shape, channel_axis if per_channel else 0, groups)
