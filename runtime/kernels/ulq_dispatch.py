"""Backend choice for QAT fake quantization: fused Triton kernels on CUDA, compiled C++ kernels on
CPU, the references elsewhere.

The three entry points take the arguments of their :mod:`.ulq` / :mod:`.ulq_weight` namesakes
and pick, per call::

    fused (ulq_fused)     <=>  tensor.device.type in FUSED_DEVICES ("cuda") and triton imports
    compiled (cpu_ext)    <=>  not fused, tensor.device.type == "cpu" and the C++ kernels built
        both also need: tensor.dtype in (float32, float64), _round is torch.round (the
        gradcheck hook stays on the reference) and QDQFORGE_FUSED != "0"
    reference (ulq[_weight]) otherwise: half/bfloat16 (AMP), no triton/compiler, QDQFORGE_FUSED=0

Triton and the C++ toolchain are optional: each is tried on the first call that would use it, so
the package and every path work without them. All backends give the same forward values and
gradients (tests/runtime/kernels/test_ulq_triton.py under ``TRITON_INTERPRET=1``, tests/runtime/
test_cpu_ext.py).
"""

from __future__ import annotations

import functools
import logging
import math
from types import ModuleType, SimpleNamespace

import torch

from qdqforge.runtime.kernels import cpu_ext, ulq, ulq_weight
from qdqforge.runtime.kernels.arq import from_channel_major
from qdqforge.runtime.kernels.quant_math import int_range

logger = logging.getLogger(__name__)

ENV_SWITCH = cpu_ext.ENV_SWITCH
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


def _accelerated(t: torch.Tensor, _round: ulq.Round) -> bool:
    return _round is torch.round and t.dtype in FUSED_DTYPES and cpu_ext.switched_on()


def fused_backend(t: torch.Tensor, _round: ulq.Round = torch.round) -> ModuleType | None:
    """:mod:`.ulq_fused` when ``t`` takes the fused path (module docstring), else None."""
    if t.is_cpu and "cpu" not in FUSED_DEVICES:  # the common CPU case without a device object
        return None
    if t.device.type not in FUSED_DEVICES or not _accelerated(t, _round):
        return None
    return _fused_module()


def cpu_backend(t: torch.Tensor, _round: ulq.Round = torch.round) -> SimpleNamespace | None:
    """The compiled CPU ops when ``t`` takes that path (module docstring), else None."""
    if not t.is_cpu or not _accelerated(t, _round):
        return None
    return cpu_ext.cpu_ops()


def ulq_act_fake_quant(
    x, clip_max, clip_min=None, num_bits: int = 8, fixed_min: bool = False, *, _round=torch.round
) -> torch.Tensor:
    """:func:`.ulq.ulq_act_fake_quant`, fused on CUDA, compiled on CPU."""
    fused = fused_backend(x, _round)
    compiled = None if fused is not None else cpu_backend(x, _round)
    if compiled is not None and _clip_dtypes_match(clip_max, None if fixed_min else clip_min):
        return compiled.ulq_act(x, clip_max, None if fixed_min else clip_min, num_bits)
    if fused is None:
        return ulq.ulq_act_fake_quant(x, clip_max, clip_min, num_bits, fixed_min, _round=_round)
    if fixed_min or clip_min is None:
        clip_min = torch.zeros_like(clip_max).detach()
    return fused.FusedUlqActFakeQuant.apply(x, clip_max, clip_min, num_bits)


def _clip_dtypes_match(clip_max: torch.Tensor, clip_min: torch.Tensor | None) -> bool:
    return clip_max.dtype in FUSED_DTYPES and (clip_min is None or clip_min.dtype == clip_max.dtype)


def arq_retrain_fake_quant(
    w, num_bits=8, channel_wise=True, channel_axis=0, groups=1, *, _round=torch.round
) -> torch.Tensor:
    """:func:`.ulq_weight.arq_retrain_fake_quant`, fused on CUDA, compiled on CPU."""
    fused = fused_backend(w, _round)
    compiled = None if fused is not None else cpu_backend(w, _round)
    if fused is None and compiled is None:
        return ulq_weight.arq_retrain_fake_quant(
            w, num_bits, channel_wise, channel_axis, groups, _round=_round
        )
    if compiled is not None and channel_axis == 0:  # rows are already the output channels
        return compiled.arq_retrain(w, num_bits, channel_wise)
    m = ulq_weight.channel_major(w, channel_wise, channel_axis, groups)
    if compiled is not None:
        out = compiled.arq_retrain(m, num_bits, channel_wise)
    else:
        out = fused.FusedArqRetrainFakeQuant.apply(m, num_bits, channel_wise)
    return from_channel_major(out, w.shape, channel_axis if channel_wise else 0, groups)


def ulq_weight_fake_quant(
    w, scale, num_bits=8, channel_axis=0, groups=1, *, _round=torch.round, grad_factor=None
) -> torch.Tensor:
    """:func:`.ulq_weight.ulq_weight_fake_quant`, fused on CUDA, compiled on CPU (LSQ factor
    ``1/sqrt(K qmax)``)."""
    fused = fused_backend(w, _round)
    compiled = None if fused is not None else cpu_backend(w, _round)
    if compiled is None and fused is None:
        return ulq_weight.ulq_weight_fake_quant(
            w, scale, num_bits, channel_axis, groups, _round=_round, grad_factor=grad_factor
        )
    per_channel = scale.numel() > 1
    factor = 1.0 / math.sqrt(w.numel() // scale.numel() * int_range(num_bits)[1])
    factor = factor if grad_factor is None else grad_factor
    if compiled is not None and channel_axis == 0:
        return compiled.ulq_weight(w, scale, num_bits, factor)
    m = ulq_weight.channel_major(w, per_channel, channel_axis, groups)
    if compiled is not None:
        out = compiled.ulq_weight(m, scale, num_bits, factor)
    else:
        out = fused.FusedUlqWeightFakeQuant.apply(m, scale.to(m.dtype), num_bits, factor)
    return from_channel_major(out, w.shape, channel_axis if per_channel else 0, groups)
