"""AMCT quantization arithmetic (docs/amct.md §4.0): integer ranges, scale/offset, finite checks.

With ``b`` bits, ``qmin = -2^(b-1)``, ``qmax = 2^(b-1) - 1``::

    symmetric:   scale = max(|max|, |min|) / (2^(b-1) - 1)      offset = 0
                 scale = |min| / 2^(b-1)    when |min| > |max| (the negative end is -2^(b-1))
    asymmetric:  max <- max(max, 0), min <- min(min, 0)         (the range must contain 0)
                 scale = (max - min) / (2^b - 1)
                 offset = round(-2^(b-1) - min / scale)         (round half to even)
    degenerate:  scale < FLT_EPSILON -> scale = 1, offset = -2^(b-1) (asym) or 0 (sym)

The one rounding definition is ONNX QuantizeLinear (``fake_quant_ref.quantize_linear``):
``q = clamp(round_half_even(x / scale) + zp, qmin, qmax)``, ``x^ = (q - zp) * scale`` — divide
(onnxruntime does not multiply by 1/scale) and round *before* adding the zero point.
Scale and offset are computed in the inputs' dtype (float64 for Python floats).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from qdqforge.errors import CalibrationError

FLT_EPSILON = 1.1920928955078125e-07  # float32 machine epsilon, AMCT's degenerate-scale bound


class ActivationQuantParams(NamedTuple):
    """Per-tensor activation parameters an observer (IFMR, HFMG) computes."""

    scale: float
    offset: int
    clip_min: float
    clip_max: float


def row_blocks(shape: tuple[int, ...], elements: int = 2**22) -> list[slice]:
    """Slices of dim 0 of a ``shape`` array, about ``elements`` values each: elementwise work on
    a large weight done block by block gives the same values with temporaries of ~16 MB (a
    weight of 1 GiB quantized in one go held ~3 temporaries of its size)."""
    row = 1
    for size in shape[1:]:
        row *= size
    step = max(1, elements // max(1, row))
    return [slice(start, start + step) for start in range(0, shape[0] if shape else 1, step)]


def int_range(num_bits: int, signed: bool = True) -> tuple[int, int]:
    """Return ``(qmin, qmax)`` of a ``num_bits`` integer grid (signed, or unsigned from 0)."""
    if signed:
        return -(2 ** (num_bits - 1)), 2 ** (num_bits - 1) - 1
    return 0, 2**num_bits - 1


def _as_float_tensor(value: torch.Tensor | float) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.double()
    return torch.tensor(float(value), dtype=torch.float64)


def check_finite(x: torch.Tensor, layer: str | None = None, what: str = "input") -> None:
    """Raise if ``x`` holds NaN or inf (AMCT aborts with "calculate scale failed").

    Args:
        x: the tensor to check (any device; this synchronises with the device once).
        layer: layer name for the message.
        what: what ``x`` is ("input", "weight", ...), for the message.

    Raises:
        CalibrationError: naming the layer and how many values are not finite.
    """
    bad = _nonfinite_count(x) if x.is_floating_point() else 0
    if bad:
        raise nonfinite_error(bad, x.numel(), layer, what)


def _nonfinite_count(x: torch.Tensor) -> int:
    from qdqforge.runtime.calibration.observe_ops import observe_ops  # it imports this module

    ops = observe_ops(x)
    if ops is None:
        return int((~torch.isfinite(x)).sum())
    return int(ops.scan(x.reshape(-1), 0, 0)[1])  # one compiled pass, the same count


def nonfinite_error(bad: int, numel: int, layer: str | None, what: str = "input"):
    """The CalibrationError for ``bad`` NaN/inf among ``numel`` values (:func:`check_finite`)."""
    name = layer or "<unnamed layer>"
    return CalibrationError(
        f"layer '{name}': {bad} of {numel} {what} values are NaN or inf, so no "
        f"quantization scale can be computed; fix the model or add '{name}' to skip_layers"
    )


def finite_batch(x: torch.Tensor, layer: str | None = None) -> torch.Tensor | None:
    """One observer batch flattened and detached; None when empty.

    Raises:
        CalibrationError: the batch holds NaN or inf (see :func:`check_finite`).
    """
    flat = x.detach().reshape(-1)
    if flat.numel() == 0:
        return None
    check_finite(flat, layer)
    return flat


def divide(t: torch.Tensor, n: float) -> torch.Tensor:
    """``t / n`` correctly rounded on every device (float32/float64).

    CUDA divides by a host scalar as ``t * (1 / n)`` with the reciprocal rounded first (PyTorch's
    true-division kernel), one ulp off the quotient for some values: ``4.2 / 255`` gave
    ``0.016470588`` on an H200 against ``0.016470587`` on CPU, so a scale, and every value on a
    rounding tie of its grid, depended on the device. There the divisor is a tensor on ``t``'s
    device (elementwise IEEE division). The CPU divides float32/float64 by a scalar exactly; half
    and bfloat16 keep the scalar (a 16-bit divisor could not hold ``2^16 - 1``).
    """
    if t.is_cpu or t.dtype not in (torch.float32, torch.float64):
        return t / n
    return t / torch.full((), n, dtype=t.dtype, device=t.device)


def symmetric_scale(
    min_val: torch.Tensor | float, max_val: torch.Tensor | float, num_bits: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric min-max scale (offset 0), per tensor or elementwise per channel.

    Args:
        min_val: minimum (scalar or per-channel tensor).
        max_val: maximum, same shape as ``min_val``.
        num_bits: bit width of the signed grid.

    Returns:
        ``(scale, offset)``; ``offset`` is an int64 tensor of zeros.
    """
    lo, hi = _as_float_tensor(min_val).abs(), _as_float_tensor(max_val).abs()
    qmin, qmax = int_range(num_bits)
    scale = torch.where(lo > hi, divide(lo, -qmin), divide(torch.maximum(lo, hi), qmax))
    scale = torch.where(scale < FLT_EPSILON, torch.ones_like(scale), scale)
    return scale, torch.zeros(scale.shape, dtype=torch.int64, device=scale.device)


def asymmetric_scale_offset(
    min_val: torch.Tensor | float, max_val: torch.Tensor | float, num_bits: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric min-max scale and offset on the signed grid (AMCT's INT8-with-offset).

    Args:
        min_val: minimum (scalar or per-channel tensor); clamped to <= 0.
        max_val: maximum, same shape; clamped to >= 0.
        num_bits: bit width.

    Returns:
        ``(scale, offset)``; ``offset`` is an int64 tensor in ``[qmin, qmax]``.
    """
    lo = torch.clamp(_as_float_tensor(min_val), max=0.0)
    hi = torch.clamp(_as_float_tensor(max_val), min=0.0)
    qmin, _ = int_range(num_bits)
    scale = divide(hi - lo, 2**num_bits - 1)
    degenerate = scale < FLT_EPSILON
    scale = torch.where(degenerate, torch.ones_like(scale), scale)
    offset = torch.round(qmin - lo / scale)
    offset = torch.where(degenerate, torch.full_like(offset, qmin), offset)
    return scale, offset.to(torch.int64)
