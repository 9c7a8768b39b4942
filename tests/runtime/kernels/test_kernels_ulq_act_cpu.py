"""The CPU path of the ULQ activation Function (grid in Python scalars) equals its tensor-op path
(values, masks, sums), and the Function takes it on CPU.

Inputs hit the thresholds ``s (qmin - o)`` and ``s (qmax - o)`` exactly, sit one float step
beside them, and include the zeros a ReLU produces, where an off-by-one comparison would show.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qdqforge.runtime.kernels import ulq_act_cpu
from qdqforge.runtime.kernels.quant_math import int_range
from qdqforge.runtime.kernels.ulq import (
    UlqActFakeQuant,
    _ulq_act_backward,
    fake_quant_grid,
    ulq_scale_offset,
)
from qdqforge.runtime.kernels.ulq_act_cpu import (
    grid_forward,
    grid_one_buffer,
    scalar_grid,
    ulq_act_backward_scalar,
)

CASES = {
    "int8_f64": (8, torch.float64, (2.5, -1.7)),
    "int8_f32": (8, torch.float32, (0.7391, -0.1234567)),
    "int8_f32_fixed_min": (8, torch.float32, (3.1, 0.0)),
    "int4_f32": (4, torch.float32, (1.3, -0.45)),
}


def edge_inputs(bits: int, dtype: torch.dtype, clips: tuple[float, float]):
    clip_max, clip_min = (torch.tensor(c, dtype=dtype) for c in clips)
    s, o = ulq_scale_offset(clip_max, clip_min, bits)
    qmin, qmax = int_range(bits)
    lo, hi = s * (qmin - o), s * (qmax - o)
    edges = torch.stack([lo, hi, torch.zeros((), dtype=dtype)])
    beside = torch.cat([torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)])
    gen = torch.Generator().manual_seed(bits)
    noise = torch.randn(4000, generator=gen, dtype=dtype) * 2 * float(hi - lo)
    x = torch.cat([edges, beside, noise, torch.zeros(51, dtype=dtype)]).reshape(-1, 1, 2)
    return x, clip_max, clip_min, s, o


def _scalar(clip_max, clip_min, bits, x):
    return scalar_grid(float(clip_max), float(clip_min), bits, clip_max.dtype, x.dtype)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_scalar_grid_equals_tensor_grid(case):
    bits, dtype, clips = CASES[case]
    x, clip_max, clip_min, s, o = edge_inputs(bits, dtype, clips)
    grid = _scalar(clip_max, clip_min, bits, x)
    assert (grid.s, grid.o) == (float(s), float(o))
    qmin, qmax = int_range(bits)
    assert (grid.lo, grid.hi) == (
        float((s * (qmin - o)).to(dtype)),
        float((s * (qmax - o)).to(dtype)),
    )
    f = np.float64 if dtype == torch.float64 else np.float32
    assert grid.below_lo < grid.lo and f(grid.below_lo) == np.nextafter(f(grid.lo), f(-np.inf))


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_cpu_forward_equals_grid(case):
    bits, dtype, clips = CASES[case]
    x, clip_max, clip_min, s, o = edge_inputs(bits, dtype, clips)
    qmin, qmax = int_range(bits)
    want = fake_quant_grid(x, s, o, qmin, qmax, torch.round)
    assert torch.equal(grid_one_buffer(x, s, o, bits, torch.round), want)
    assert torch.equal(grid_forward(x, _scalar(clip_max, clip_min, bits, x), bits), want)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_cpu_backward_equals_tensor_ops(case):
    bits, dtype, clips = CASES[case]
    x, clip_max, clip_min, s, o = edge_inputs(bits, dtype, clips)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    ctx = SimpleNamespace(num_bits=bits, round=torch.round)
    grid = _scalar(clip_max, clip_min, bits, x)
    got = ulq_act_backward_scalar(grad, x, (float(clip_max), float(clip_min)), grid, bits)
    want = _ulq_act_backward(ctx, grad, x, clip_max, clip_min, s, o)
    assert torch.equal(got[0], want[0])  # the same elements pass, thresholds included
    assert int((got[0] == 0).sum()) > int((grad == 0).sum())  # some were clipped
    tol = 1e-12 if dtype == torch.float64 else 2e-6 * float(grad.abs().sum())
    for g, w in zip(got[1:], want[1:]):
        assert abs(float(g) - float(w)) <= tol, (float(g), float(w))


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_function_takes_the_scalar_path_and_matches_tensor_path(case, monkeypatch):
    bits, dtype, clips = CASES[case]
    x, clip_max, clip_min, _, _ = edge_inputs(bits, dtype, clips)
    calls = []
    real = ulq_act_cpu.ulq_act_backward_scalar
    monkeypatch.setattr(
        "qdqforge.runtime.kernels.ulq.ulq_act_backward_scalar",
        lambda *a: calls.append(1) or real(*a),
    )
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    results = []
    for rnd in (torch.round, lambda t: t.round()):  # the lambda takes the tensor-op path
        leaves = [t.clone().requires_grad_() for t in (x, clip_max, clip_min)]
        y = UlqActFakeQuant.apply(*leaves, bits, rnd)
        y.backward(grad)
        results.append((y, *(t.grad for t in leaves)))
    (y, gx, gmax, gmin), (y_t, gx_t, gmax_t, gmin_t) = results
    assert len(calls) == 1 and torch.equal(y, y_t) and torch.equal(gx, gx_t)
    tol = 1e-12 if dtype == torch.float64 else 2e-6 * float(grad.abs().sum())
    for got, want in ((gmax, gmax_t), (gmin, gmin_t)):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert abs(float(got) - float(want)) <= tol
