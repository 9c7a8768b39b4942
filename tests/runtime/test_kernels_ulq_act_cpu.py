"""The CPU path of the ULQ activation Function equals its tensor-op path (values, masks, sums).

Inputs hit the thresholds ``s (qmin - o)`` and ``s (qmax - o)`` exactly, sit one float step
beside them, and include the zeros a ReLU produces, where an off-by-one comparison would show.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from qdqforge.runtime.kernels.quant_math import int_range
from qdqforge.runtime.kernels.ulq import _grid, _ulq_act_backward, ulq_scale_offset
from qdqforge.runtime.kernels.ulq_act_cpu import grid_one_buffer, ulq_act_backward_cpu

CASES = {
    "int8_f64": (8, torch.float64, (2.5, -1.7)),
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


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_cpu_forward_equals_grid(case):
    bits, dtype, clips = CASES[case]
    x, _, _, s, o = edge_inputs(bits, dtype, clips)
    qmin, qmax = int_range(bits)
    assert torch.equal(
        grid_one_buffer(x, s, o, bits, torch.round), _grid(x, s, o, qmin, qmax, torch.round)
    )


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_cpu_backward_equals_tensor_ops(case):
    bits, dtype, clips = CASES[case]
    x, clip_max, clip_min, s, o = edge_inputs(bits, dtype, clips)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    ctx = SimpleNamespace(num_bits=bits, round=torch.round)
    got = ulq_act_backward_cpu(ctx, grad, x, (clip_max, clip_min), s, o)
    want = _ulq_act_backward(ctx, grad, x, clip_max, clip_min, s, o)
    assert torch.equal(got[0], want[0])  # the same elements pass, thresholds included
    assert int((got[0] == 0).sum()) > int((grad == 0).sum())  # some were clipped
    tol = 1e-12 if dtype == torch.float64 else 2e-6 * float(grad.abs().sum())
    for g, w in zip(got[1:], want[1:]):
        assert abs(float(g) - float(w)) <= tol, (float(g), float(w))
