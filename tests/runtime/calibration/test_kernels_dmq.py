"""DMQ: per-channel maxima and balance factors against numpy loops (docs/amct.md §4.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdqforge.errors import CalibrationError, QuantizationError
from qdqforge.runtime.calibration.dmq import (
    DmqObserver,
    balance_factors,
    input_channel_absmax,
    weight_input_channel_absmax,
)


def np_factors(a: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    s = np.ones_like(a)
    regular = [j for j in range(a.size) if a[j] > 0 and w[j] > 0]
    for j in regular:
        s[j] = a[j] ** alpha / w[j] ** (1 - alpha)
    if not regular:
        return s
    act_peak = max(a[k] / s[k] for k in regular)
    wgt_peak = max(w[k] * s[k] for k in regular)
    for j in range(a.size):
        if w[j] == 0 and a[j] > 0:
            s[j] = a[j] / act_peak
        elif a[j] == 0 and w[j] > 0:
            s[j] = wgt_peak / w[j]
    return s


def np_weight_max(w: np.ndarray, op: str, groups: int) -> np.ndarray:
    if op == "ConvTranspose":
        return np.array([np.abs(w[j]).max() for j in range(w.shape[0])])
    if op == "Linear":
        return np.abs(w).max(axis=0)
    cin_g, cout_g = w.shape[1], w.shape[0] // groups
    return np.array([np.abs(w[j // cin_g * cout_g : (j // cin_g + 1) * cout_g, j % cin_g]).max()
                     for j in range(cin_g * groups)])  # fmt: skip


LAYOUTS = {
    "conv1d": ("Conv", (8, 6, 3), 1),
    "conv2d": ("Conv", (8, 6, 3, 3), 1),
    "conv3d": ("Conv", (4, 3, 2, 2, 2), 1),
    "conv_grouped": ("Conv", (8, 3, 3, 3), 2),
    "depthwise": ("Conv", (12, 1, 3, 3), 12),
    "depthwise_mult2": ("Conv", (12, 1, 3, 3), 6),
    "convtranspose_grouped": ("ConvTranspose", (6, 2, 3, 3), 3),
    "linear": ("Linear", (5, 7), 1),
}


@pytest.mark.parametrize("name", list(LAYOUTS), ids=list(LAYOUTS))
def test_weight_input_channel_absmax(name):
    op, shape, groups = LAYOUTS[name]
    w = np.random.default_rng(3).normal(size=shape)
    got = weight_input_channel_absmax(torch.from_numpy(w), op, groups)
    np.testing.assert_array_equal(got.numpy(), np_weight_max(w, op, groups))
    matmul = weight_input_channel_absmax(torch.from_numpy(w.reshape(shape[0], -1).T), "MatMul")
    assert matmul.shape == (int(np.prod(shape[1:])),)


@pytest.mark.parametrize(
    ("shape", "axis"), [((4, 6, 5, 5), 1), ((4, 9, 6), -1), ((3, 6), -1)], ids=["nchw", "btc", "bc"]
)
def test_observer_running_max(shape, axis):
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=shape) * (i + 1) for i in range(3)]
    obs = DmqObserver(axis)
    for b in batches:
        obs.update(torch.from_numpy(b))
    all_x = np.abs(np.concatenate(batches, axis=0))
    expected = np.moveaxis(all_x, axis, 0).reshape(shape[axis], -1).max(axis=1)
    np.testing.assert_array_equal(obs.absmax.numpy(), expected)
    assert input_channel_absmax(torch.from_numpy(batches[0]), axis).shape == (shape[axis],)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8], ids=lambda a: f"alpha{a}")
def test_factors_with_zero_channels_match_numpy(alpha):
    rng = np.random.default_rng(1)
    a, w = rng.exponential(size=16) * 10, rng.exponential(size=16)
    a[[1, 5]], w[[2, 5, 7]] = 0.0, 0.0  # a=0, w=0 and both-zero channels
    got = balance_factors(torch.from_numpy(a), torch.from_numpy(w), alpha)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), np_factors(a, w, alpha), rtol=1e-6)
    assert got[5] == 1.0


def test_factors_keep_layer_output():
    x, w = torch.randn(4, 6, dtype=torch.float64) * 5, torch.randn(3, 6, dtype=torch.float64)
    s = balance_factors(input_channel_absmax(x, -1), weight_input_channel_absmax(w, "Linear"))
    torch.testing.assert_close((x / s.double()) @ (w * s.double()).T, x @ w.T)


def test_all_zero_weight_gives_ones():
    got = balance_factors(torch.ones(3), torch.zeros(3))
    assert got.tolist() == [1.0, 1.0, 1.0]


def test_out_of_bounds_factor_names_layer():
    # no entry is negligible beside its peers, yet s = sqrt(1e20) / sqrt(1) > 1 / FLT_EPSILON
    act, wgt = torch.tensor([1e20, 1e20]), torch.tensor([1.0, 1.0])
    with pytest.raises(CalibrationError, match=r"layer 'fc'.*channel 0"):
        balance_factors(act, wgt, 0.5, layer="fc")


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8], ids=lambda a: f"alpha{a}")
def test_negligible_channels_take_the_zero_rules(alpha):
    """A dead channel's 1e-20 weight or activation (pretrained nets have them) counts as zero."""
    rng = np.random.default_rng(2)
    a, w = rng.exponential(size=8) * 10 + 0.1, rng.exponential(size=8) + 0.1
    tiny_w, tiny_a = w.copy(), a.copy()
    tiny_w[3], tiny_a[6] = 1e-40 * w.max(), 1e-60 * a.max()  # factors out of range at any alpha
    zero_w, zero_a = w.copy(), a.copy()
    zero_w[3], zero_a[6] = 0.0, 0.0
    got = balance_factors(torch.from_numpy(a), torch.from_numpy(tiny_w), alpha)
    np.testing.assert_allclose(got.numpy(), np_factors(a, zero_w, alpha), rtol=1e-6)
    got = balance_factors(torch.from_numpy(tiny_a), torch.from_numpy(w), alpha)
    np.testing.assert_allclose(got.numpy(), np_factors(zero_a, w, alpha), rtol=1e-6)
    assert bool(((got > 1.2e-7) & (got < 1 / 1.2e-7)).all())
    dead = a.copy()
    dead[3] = 0.0  # a dead channel read through a negligible weight: both count as zero
    got = balance_factors(torch.from_numpy(dead), torch.from_numpy(tiny_w), alpha)
    assert got[3] == 1.0
    np.testing.assert_allclose(got.numpy()[:3], np_factors(a, w, alpha)[:3], rtol=1e-6)


def test_dead_channel_factor_is_clamped_into_range():
    """a_j = 0 beside a small (not negligible) weight: the zero rule's 1e9 factor is clamped."""
    act = torch.tensor([600.0, 5.0, 0.0], dtype=torch.float64)
    wgt = torch.tensor([8.0, 2.0, 1.5e-6], dtype=torch.float64)  # 1.9e-7 of the largest
    got = balance_factors(act, wgt, 0.5)
    expected = np_factors(act.numpy(), wgt.numpy(), 0.5)
    assert expected[2] > 1 / 1.2e-7  # the rule alone is out of range
    np.testing.assert_allclose(got.numpy()[:2], expected[:2], rtol=1e-6)
    assert 1.2e-7 < float(got[2]) < 1 / 1.2e-7


def test_negligible_weight_channel_keeps_layer_output():
    x = torch.randn(4, 6, dtype=torch.float64) * 5
    w = torch.randn(3, 6, dtype=torch.float64)
    w[:, 2] = 1e-22  # dead input channel: before the fix a 1e11 factor raised CalibrationError
    s = balance_factors(input_channel_absmax(x, -1), weight_input_channel_absmax(w, "Linear"))
    torch.testing.assert_close((x / s.double()) @ (w * s.double()).T, x @ w.T)


def test_bad_inputs():
    with pytest.raises(QuantizationError):
        balance_factors(torch.ones(3), torch.ones(4))
    with pytest.raises(QuantizationError, match="op type 'Pool'"):
        weight_input_channel_absmax(torch.ones(2, 2), "Pool")
    with pytest.raises(CalibrationError, match="conv9"):
        DmqObserver(layer="conv9").update(torch.tensor([[float("nan")]]))
    with pytest.raises(CalibrationError, match="no forward"):
        DmqObserver(layer="conv9").compute(torch.ones(2))
