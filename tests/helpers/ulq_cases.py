"""Inputs for the fused-vs-reference QAT kernel tests: random values plus values exactly at
rounding ties (``(j + 0.5) s`` with a power-of-two ``s``) and at the clip edges (the thresholds
and their float neighbours), several shapes (one block and several), 8 and 4 bits, float32/64."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from qdqforge.runtime.kernels.ulq import ulq_scale_offset


@dataclass
class ActCase:
    name: str
    x: torch.Tensor
    clip_max: torch.Tensor
    clip_min: torch.Tensor
    bits: int
    fixed_min: bool
    grad: torch.Tensor


@dataclass
class WeightCase:
    name: str
    m: torch.Tensor
    bits: int
    grad: torch.Tensor
    channel_wise: bool = True
    scale: torch.Tensor | None = None
    factor: float = 1.0


REL = {torch.float32: 1e-5, torch.float64: 1e-12}


def leaves(*tensors):
    """Detached copies that require grad, one per tensor."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def close_sums(got, ref, terms_abs_sum, dtype):
    """Sums of the same terms in another order: error bound in units of ``sum |terms|``."""
    assert torch.all((got - ref).abs() <= REL[dtype] * terms_abs_sum + 1e-30), (got, ref)


def assert_same_act_gradients(case: ActCase, y, y_ref, leaves_got, leaves_ref) -> None:
    """Backpropagate ``case.grad`` through an accelerated ULQ activation ``y`` and the reference
    ``y_ref``: ``dL/dx`` equal, the clip gradients (sums) within :func:`close_sums`."""
    (x, cmax, cmin), (xr, cmax_r, cmin_r) = leaves_got, leaves_ref
    (y * case.grad).sum().backward()
    (y_ref * case.grad).sum().backward()
    assert torch.equal(x.grad, xr.grad)
    bound = case.grad.abs().sum().to(case.x.dtype)
    close_sums(cmax.grad, cmax_r.grad, bound, case.x.dtype)
    if not case.fixed_min:
        close_sums(cmin.grad, cmin_r.grad, bound, case.x.dtype)
    assert cmax.grad != 0


def assert_ulq_act_matches(case: ActCase, fused, reference) -> torch.Tensor:
    """``fused`` (FusedUlqActFakeQuant) against ``reference`` (UlqActFakeQuant) on ``case``, on
    its tensors' device: forward equal, gradients as :func:`assert_same_act_gradients`; returns
    the fused forward (detached)."""
    x, cmax, cmin = leaves(case.x, case.clip_max, case.clip_min)
    xr, cmax_r, cmin_r = leaves(case.x, case.clip_max, case.clip_min)
    cmin_f = torch.zeros_like(cmax) if case.fixed_min else cmin
    cmin_rf = torch.zeros_like(cmax_r) if case.fixed_min else cmin_r
    y = fused.apply(x, cmax, cmin_f, case.bits)
    y_ref = reference.apply(xr, cmax_r, cmin_rf, case.bits, torch.round)
    assert torch.equal(y, y_ref)
    assert_same_act_gradients(case, y, y_ref, (x, cmax, cmin), (xr, cmax_r, cmin_r))
    return y.detach()


def assert_ulq_weight_matches(case: WeightCase, fused, reference) -> None:
    """``fused`` (FusedUlqWeightFakeQuant) against ``reference`` (UlqWeightFakeQuant) on
    ``case``, on its tensors' device: forward and ``dL/dW`` equal, the scale gradient (a sum in
    another order) within :func:`close_sums`."""
    m, s = leaves(case.m, case.scale)
    mr, sr = leaves(case.m, case.scale)
    y = fused.apply(m, s, case.bits, case.factor)
    y_ref = reference.apply(mr, sr, case.bits, case.factor, torch.round)
    assert torch.equal(y, y_ref)
    y.backward(case.grad)
    y_ref.backward(case.grad)
    assert torch.equal(m.grad, mr.grad)
    qmax = 2 ** (case.bits - 1)
    bound = (case.grad.abs() * qmax).sum(dim=1) * case.factor
    close_sums(s.grad, sr.grad, bound, case.m.dtype)
    assert (s.grad != 0).all()


def neighbours(v: torch.Tensor) -> torch.Tensor:
    """``v`` and the floats just below and above it."""
    inf = torch.full_like(v, math.inf)
    return torch.cat([v, torch.nextafter(v, -inf), torch.nextafter(v, inf)])


def plant(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` with its first entries replaced by ``values`` (as many as fit)."""
    flat = x.reshape(-1).clone()
    k = min(flat.numel(), values.numel())
    flat[:k] = values[:k]
    return flat.reshape(x.shape)


def act_edges(clip_max: torch.Tensor, clip_min: torch.Tensor, bits: int) -> torch.Tensor:
    """Ties ``(j + 0.5) s`` on the grid's own ``s`` (as the kernels compute it) and the edges."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    s, o = ulq_scale_offset(clip_max, clip_min, bits)
    ties = (torch.arange(qmin - 3, qmax + 3, dtype=s.dtype) - o + 0.5) * s
    edges = torch.stack([s * (qmin - o), s * (qmax - o), clip_max, clip_min, 0.0 * s])
    return torch.cat([neighbours(edges), ties])


def act_cases() -> list[ActCase]:
    gen = torch.Generator().manual_seed(0)
    cases = []
    grid = [((4, 3, 8, 8), 8, False, torch.float32), ((3, 1000), 8, True, torch.float32),
            ((7,), 4, False, torch.float32), ((2, 5, 33), 4, True, torch.float32),
            ((5, 300), 8, False, torch.float64)]  # fmt: skip
    for shape, bits, fixed_min, dtype in grid:
        for pow2 in (True, False):
            s = 2.0**-4 if pow2 else 4.2 / (2**bits - 1)
            cmin = 0.0 if fixed_min else (-(2 ** (bits - 2)) * s if pow2 else -1.7)
            cmax = cmin + (2**bits - 1) * s
            clips = torch.tensor(cmax, dtype=dtype), torch.tensor(cmin, dtype=dtype)
            x = torch.randn(shape, generator=gen, dtype=dtype) * cmax
            x = plant(x, act_edges(*clips, bits))
            grad = torch.randn(shape, generator=gen, dtype=dtype)
            name = f"{'x'.join(map(str, shape))}-int{bits}-{'fixedmin' if fixed_min else 'asym'}"
            name += f"-{'pow2' if pow2 else 'rand'}-{str(dtype)[6:]}"
            cases.append(ActCase(name, x, *clips, bits, fixed_min, grad))
    return cases


def weight_rows(rows: int, cols: int, bits: int, dtype, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """``(m, s)``: row ``c`` has the power-of-two scale ``2^-(c % 4 + 3)``, ties and edges."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    s = torch.tensor([2.0 ** -(c % 4 + 3) for c in range(rows)], dtype=dtype)
    m = torch.randn(rows, cols, generator=gen, dtype=dtype) * s[:, None] * qmax / 2
    j = torch.arange(qmin - 2, qmax + 2, dtype=dtype) + 0.5
    for c in range(rows):
        edges = neighbours(torch.tensor([qmin, qmax], dtype=dtype) * s[c])
        m[c] = plant(m[c], torch.cat([edges, j * s[c]]))
    return m, s


def arq_cases() -> list[WeightCase]:
    gen, cases = torch.Generator().manual_seed(1), []
    for rows, cols, bits, dtype in [(8, 36, 8, torch.float32), (6, 1500, 4, torch.float32),
                                    (4, 20, 8, torch.float64)]:  # fmt: skip
        m, s = weight_rows(rows, cols, bits, dtype, gen)
        qmax = 2 ** (bits - 1) - 1
        m = torch.minimum(torch.maximum(m, -qmax * s[:, None]), qmax * s[:, None])
        m[0, -1] = qmax * s[0]  # row max: ARQ's scale is s[0] exactly, so the ties stay ties
        m[1, -1] = -(qmax + 1) * s[1] * 2  # |min| > |max|: ARQ's 2^(b-1) branch, scale 2 s[1]
        m[-1] = 0.0  # all-zero channel: scale 1
        for channel_wise in (True, False):
            name = f"{rows}x{cols}-int{bits}-{'channel' if channel_wise else 'tensor'}"
            grad = torch.randn(m.shape, generator=gen, dtype=dtype)
            cases.append(WeightCase(f"{name}-{str(dtype)[6:]}", m, bits, grad, channel_wise))
    return cases


def ulq_weight_cases() -> list[WeightCase]:
    gen, cases = torch.Generator().manual_seed(2), []
    f32, f64 = torch.float32, torch.float64
    for rows, cols, bits, dtype in [(8, 36, 8, f32), (3, 2100, 4, f32), (1, 50, 8, f32),
                                    (4, 20, 4, f64)]:  # fmt: skip
        m, s = weight_rows(rows, cols, bits, dtype, gen)
        grad = torch.randn(m.shape, generator=gen, dtype=dtype)
        factor = 1.0 / math.sqrt(cols * (2 ** (bits - 1) - 1))
        name = f"{rows}x{cols}-int{bits}-{str(dtype)[6:]}"
        cases.append(WeightCase(name, m, bits, grad, scale=s, factor=factor))
    return cases
