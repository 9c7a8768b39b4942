"""ULQ, arq_retrain, ulq_retrain: fused Functions vs plain torch vs numpy (docs/amct.md §4.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qdqforge.runtime.kernels.arq import arq_quantize
from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize
from qdqforge.runtime.kernels.ulq import (
    fake_quant_grid,
    sanitize_clips,
    ulq_act_fake_quant,
    ulq_act_reference,
    ulq_clips_from_scale,
    ulq_scale_offset,
)
from qdqforge.runtime.kernels.ulq_weight import (
    arq_retrain_fake_quant,
    arq_retrain_reference,
    positive_scale,
    ulq_weight_fake_quant,
    ulq_weight_init,
    ulq_weight_reference,
)


def identity(v: torch.Tensor) -> torch.Tensor:
    return v


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().double().requires_grad_()


def run(fn, inputs: list[torch.Tensor], grad: torch.Tensor):
    """Forward and backward of ``fn`` on fresh leaves: (output, [input grads])."""
    leaves = [leaf(t) for t in inputs]
    out = fn(*leaves)
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves]


def act_inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64) * 2
    return x, torch.tensor(2.5, dtype=torch.float64), torch.tensor(-1.7, dtype=torch.float64)


def np_ulq_act(x: np.ndarray, cmax: float, cmin: float, g: np.ndarray, bits: int):
    qmin, qmax, levels = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, 2**bits - 1
    s = (cmax - cmin) / levels
    o = np.round(qmin - cmin / s)
    y = (np.clip(np.round(x / s) + o, qmin, qmax) - o) * s
    upper, lower = x > s * (qmax - o), x < s * (qmin - o)
    xt = np.where(upper, cmax, np.where(lower, cmin, x)) / s
    e = (np.round(xt) - xt) / levels
    return y, g * ~(upper | lower), (g * (e + upper)).sum(), (g * (lower - e)).sum()


@pytest.mark.parametrize("bits", [8, 4], ids=["int8", "int4"])
def test_ulq_act_function_reference_numpy(bits):
    x, cmax, cmin = act_inputs()
    g = torch.randn_like(x)
    y, grads = run(lambda *a: ulq_act_fake_quant(*a, num_bits=bits), [x, cmax, cmin], g)
    y_ref, grads_ref = run(lambda *a: ulq_act_reference(*a, num_bits=bits), [x, cmax, cmin], g)
    assert torch.equal(y, y_ref)
    for got, ref in zip(grads, grads_ref):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    expected = np_ulq_act(x.numpy(), 2.5, -1.7, g.numpy(), bits)
    for got, want in zip([y, *grads], expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert grads[1] != 0 and grads[2] != 0


def test_ulq_act_forward_is_onnx_grid():
    x, cmax, cmin = act_inputs(1)
    s, o = ulq_scale_offset(cmax, cmin)
    expected = fake_quantize(x, s, o, -128, 127)
    assert torch.equal(ulq_act_fake_quant(x, cmax, cmin), expected)


def test_ulq_act_fixed_min():
    x, cmax, _ = act_inputs(2)
    c = leaf(cmax)
    y = ulq_act_fake_quant(x, c, torch.tensor(-5.0), fixed_min=True)
    assert float(y.min()) == 0.0
    y.sum().backward()
    assert c.grad != 0
    assert float(ulq_scale_offset(cmax, torch.zeros(()))[1]) == -128


def test_ulq_act_gradcheck_identity_round():
    _, cmax, cmin = act_inputs()
    x = torch.tensor([-3.1, -0.9, 0.33, 1.27, 2.0, 3.7])  # both clips and inside, off the edges

    def fn(x, cmax, cmin):
        return ulq_act_fake_quant(x, cmax, cmin, _round=identity)

    assert torch.autograd.gradcheck(fn, (leaf(x), leaf(cmax), leaf(cmin)))


def test_ulq_act_half_input_keeps_dtype():
    x, cmax, cmin = act_inputs(4)
    c_max, c_min = cmax.float().requires_grad_(), cmin.float().requires_grad_()
    y = ulq_act_fake_quant(x.half(), c_max, c_min)
    assert y.dtype == torch.float16
    y.float().sum().backward()
    assert c_max.grad.dtype == torch.float32 and c_min.grad != 0


@pytest.mark.parametrize(("scale", "offset"), [(0.02, -128), (0.05, 3), (0.01, 0)], ids=str)
def test_clips_from_ifmr_round_trip(scale, offset):
    clip_max, clip_min = ulq_clips_from_scale(scale, offset)
    s, o = ulq_scale_offset(torch.tensor(clip_max), torch.tensor(clip_min))
    assert float(s) == pytest.approx(scale, rel=1e-6) and int(o) == offset


def test_sanitize_clips_falls_back():
    prev = (torch.tensor(3.0), torch.tensor(-1.0))
    cmax, cmin = sanitize_clips(torch.tensor(-0.5), torch.tensor(0.2), *prev)
    assert (float(cmax), float(cmin)) == (3.0, -1.0)
    cmax, cmin = sanitize_clips(torch.tensor(0.0), torch.tensor(0.0), *prev)
    assert (float(cmax), float(cmin)) == (3.0, -1.0)
    cmax, cmin = sanitize_clips(torch.tensor(2.0), torch.tensor(-0.5), *prev)
    assert (float(cmax), float(cmin)) == (2.0, -0.5)


WEIGHTS = {
    "conv": ((8, 4, 3, 3), 0, 1),
    "linear": ((6, 10), 0, 1),
    "convtranspose_grouped": ((6, 2, 3, 3), 1, 3),
}


@pytest.mark.parametrize("channel_wise", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("name", list(WEIGHTS), ids=list(WEIGHTS))
def test_arq_retrain_function_vs_reference(name, channel_wise):
    shape, axis, groups = WEIGHTS[name]
    w = torch.randn(shape, dtype=torch.float64)
    g = torch.randn_like(w)
    args = dict(channel_wise=channel_wise, channel_axis=axis, groups=groups)
    y, (gw,) = run(lambda w: arq_retrain_fake_quant(w, **args), [w], g)
    y_ref, (gw_ref,) = run(lambda w: arq_retrain_reference(w, **args), [w], g)
    assert torch.equal(y, y_ref) and torch.equal(gw, g) and torch.equal(gw_ref, g)
    assert torch.equal(y, arq_quantize(w, 8, channel_wise, axis, groups).weight)


def test_arq_retrain_gradcheck_identity_round():
    w = leaf(torch.randn(3, 4))
    assert torch.autograd.gradcheck(lambda w: arq_retrain_fake_quant(w, _round=identity), (w,))


def np_ulq_weight(m: np.ndarray, s: np.ndarray, g: np.ndarray, bits: int):
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    v = m / s[:, None]
    inner, lower, upper = (v >= qmin) & (v <= qmax), v < qmin, v > qmax
    local = (np.round(v) - v) * inner + qmin * lower + qmax * upper
    grad_s = (g * local).sum(axis=1) / math.sqrt(m.shape[1] * qmax)
    return np.clip(np.round(v), qmin, qmax) * s[:, None], g * inner, grad_s


@pytest.mark.parametrize("bits", [8, 4], ids=["int8", "int4"])
def test_ulq_weight_function_reference_numpy(bits):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(6, 20, dtype=torch.float64, generator=gen)
    # factors < 1: no weight sits exactly on the clamp edge, where the reference's scale (one
    # ulp off: the LSQ factor trick) and the Function's may disagree on "inside" (a tie)
    scale = ulq_weight_init(w, bits) * torch.linspace(0.5, 0.95, 6, dtype=torch.float64)
    g = torch.randn(w.shape, dtype=torch.float64, generator=gen)
    y, grads = run(lambda w, s: ulq_weight_fake_quant(w, s, bits), [w, scale], g)
    y_ref, grads_ref = run(lambda w, s: ulq_weight_reference(w, s, bits), [w, scale], g)
    assert torch.equal(y, y_ref)
    for got, ref in zip(grads, grads_ref):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    expected = np_ulq_weight(w.numpy(), scale.numpy(), g.numpy(), bits)
    for got, want in zip([y, *grads], expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert (grads[1] != 0).all()


@pytest.mark.parametrize("name", list(WEIGHTS), ids=list(WEIGHTS))
def test_ulq_weight_layouts_and_init(name):
    shape, axis, groups = WEIGHTS[name]
    w = torch.randn(shape, dtype=torch.float64)
    scale = ulq_weight_init(w, 8, True, axis, groups)
    y = ulq_weight_fake_quant(w, scale, 8, axis, groups)
    assert torch.equal(y, arq_quantize(w, 8, True, axis, groups).weight)
    y_ref = ulq_weight_reference(w, scale, 8, axis, groups)
    assert torch.equal(y, y_ref)


def test_ulq_weight_gradcheck_identity_round():
    w = torch.randn(3, 5, dtype=torch.float64)
    scale = torch.tensor([0.02, 0.05, 0.5], dtype=torch.float64)  # channel 0 clips

    def fn(w, s):
        return ulq_weight_fake_quant(w, s, 4, _round=identity, grad_factor=1.0)

    assert torch.autograd.gradcheck(fn, (leaf(w), leaf(scale)))


def test_learnable_scale_stays_positive_under_adamw():
    w = torch.randn(8, 27)
    init = ulq_weight_init(w)
    log_ratio = torch.zeros(8, requires_grad=True)
    opt = torch.optim.AdamW([log_ratio], lr=1e-2)
    for _ in range(200):
        scale = positive_scale(init, log_ratio)
        loss = ulq_weight_fake_quant(w, scale).square().sum() + 1e3 * scale.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert bool((positive_scale(init, log_ratio) > 0).all())
    assert bool((positive_scale(init, log_ratio) < init).all())  # it did move down


@pytest.mark.parametrize(
    "x_dtype, offset",
    [
        (torch.float32, 0),
        (torch.float32, "tensor"),
        (torch.float16, 0),  # x / s promotes to float32
        (torch.float64, "float64"),  # a float64 offset facing float64 values
        (torch.float32, "float64"),  # a [C, 1] float64 offset would promote: out of place
    ],
)
def test_fake_quant_grid_without_autograd_is_the_out_of_place_grid_bit_for_bit(x_dtype, offset):
    gen = torch.Generator().manual_seed(4)
    x = (torch.randn(16, 33, generator=gen) * 3).to(x_dtype)
    x[0, :4] = torch.tensor([-0.3, -0.0, 0.2, 1e-30])  # rounding to -0.0 and +0.0
    s = torch.rand(16, 1, generator=gen) * 0.1 + 0.01
    o = {
        0: 0,
        "tensor": torch.tensor(3.0),
        "float64": torch.full((16, 1), -2.0, dtype=torch.float64),
    }[offset]
    with torch.enable_grad():
        want = fake_quant_grid(x, s, o, -128, 127, torch.round)
    with torch.no_grad():
        got = fake_quant_grid(x, s, o, -128, 127, torch.round)
        hooked = fake_quant_grid(x, s, o, -128, 127, lambda t: torch.floor(t + 0.5))
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want) and torch.equal(torch.signbit(got), torch.signbit(want))
    with torch.enable_grad():
        floor = fake_quant_grid(x, s, o, -128, 127, lambda t: torch.floor(t + 0.5))
    assert torch.equal(hooked, floor) and torch.equal(torch.signbit(hooked), torch.signbit(floor))


@pytest.mark.parametrize("channel_wise", [True, False])
def test_arq_retrain_without_autograd_is_the_autograd_forward_bit_for_bit(channel_wise):
    gen = torch.Generator().manual_seed(6)
    w = torch.randn(12, 7, 3, generator=gen)
    w[0, 0, :3] = torch.tensor([-1e-6, -0.0, 1e-6])  # rounding to -0.0 and +0.0
    with torch.enable_grad():
        want = arq_retrain_fake_quant(w.clone().requires_grad_(), channel_wise=channel_wise)
    with torch.no_grad():
        got = arq_retrain_fake_quant(w, channel_wise=channel_wise)
    assert torch.equal(got, want.detach())
    assert torch.equal(torch.signbit(got), torch.signbit(want.detach()))
