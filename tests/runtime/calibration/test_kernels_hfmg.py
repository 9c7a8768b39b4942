"""HFMG: re-binning, greedy windows and L2 errors against numpy loops (docs/amct.md §4.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.calibration.hfmg import (
    HfmgObserver,
    candidate_windows,
    rebin,
    window_errors,
    window_errors_fast,
)


def np_windows(hist: np.ndarray) -> list[tuple[int, int]]:
    """Linear-scan transliteration of the greedy window generation."""
    csum, total, bins = np.cumsum(hist), hist.sum(), hist.size
    step = math.ceil(total / 100000)
    left, right, cut_l, cut_r, out = 0, bins - 1, 0, 0, [(0, bins - 1)]
    while right - left + 1 > bins // 4 and cut_l + cut_r < total:
        nl, nr = left, right
        while nl < right and csum[nl] <= cut_l + step:
            nl += 1
        while nr > left and csum[nr] >= total - cut_r - step:
            nr -= 1
        if nl - left > right - nr:
            left, cut_l = nl, cut_l + step
        else:
            right, cut_r = nr, cut_r + step
        if out[-1] != (left, right):
            out.append((left, right))
    return out


def np_window_error(hist: np.ndarray, left: int, right: int, bits: int) -> float:
    """Squared error of each source bin's uniform mass vs its destination bin centre."""
    d = (right - left + 1) / 2**bits
    err = 0.0
    for j, count in enumerate(hist):
        a, e = j - left, j - left + 1
        for k in range(2**bits):  # integrate (x - centre_k)^2 over [a, e] ∩ dst bin k
            lo = -np.inf if k == 0 else k * d
            hi = np.inf if k == 2**bits - 1 else (k + 1) * d
            u, v = max(a, lo), min(e, hi)
            if u < v:
                c = (k + 0.5) * d
                err += count * ((v - c) ** 3 - (u - c) ** 3) / 3
    return err


def test_rebin_aligned_doubling_is_exact():
    hist = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert rebin(hist, 0.0, 4.0, 0.0, 8.0).tolist() == [3.0, 7.0, 0.0, 0.0]
    assert rebin(hist, 0.0, 4.0, 0.0, 4.0).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert rebin(hist, 0.0, 4.0, -2.0, 6.0).tolist() == [0.0, 3.0, 7.0, 0.0]


def test_rebin_point_mass_and_total():
    point = torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)
    assert rebin(point, 3.0, 3.0, 0.0, 3.0).tolist() == [0.0, 0.0, 5.0]
    hist = torch.rand(64, dtype=torch.float64)
    assert float(rebin(hist, -1.3, 2.1, -5.7, 2.5).sum()) == pytest.approx(float(hist.sum()))


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_windows_and_errors_match_numpy(seed):
    rng = np.random.default_rng(seed)
    hist = np.histogram(rng.standard_t(3, size=4000), bins=64)[0].astype(np.float64)
    windows = candidate_windows(torch.from_numpy(hist))
    assert windows == np_windows(hist)
    errors = window_errors(torch.from_numpy(hist), torch.tensor(windows[::3]), 3)
    expected = [np_window_error(hist, left, right, 3) for left, right in windows[::3]]
    np.testing.assert_allclose(errors.numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize(("bins", "bits"), [(64, 3), (4096, 8)], ids=["b64_int3", "b4096_int8"])
def test_fast_errors_match_elementwise(bins, bits):
    rng = np.random.default_rng(bins)
    hist = torch.from_numpy(np.histogram(rng.standard_t(2, size=20000), bins=bins)[0] * 1.0)
    windows = torch.tensor(candidate_windows(hist))
    windows = windows[windows[:, 1] - windows[:, 0] + 1 >= 2**bits][::7]
    fast = window_errors_fast(hist, windows, bits)
    torch.testing.assert_close(fast, window_errors(hist, windows, bits), rtol=1e-9, atol=0)


def test_two_batches_merge_like_one():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(50000, generator=gen), torch.randn(50000, generator=gen) * 2 + 1
    merged, single = HfmgObserver(), HfmgObserver()
    merged.update(a)
    merged.update(b)
    single.update(torch.cat([a, b]))
    assert (merged.lo, merged.hi) == (single.lo, single.hi)
    cdf_gap = (torch.cumsum(merged.hist, 0) - torch.cumsum(single.hist, 0)).abs().max()
    assert cdf_gap <= 0.002 * 100000  # re-binning moves mass by less than a bin
    got, want = merged.compute(), single.compute()
    assert got.scale == pytest.approx(want.scale, rel=0.02)
    assert abs(got.offset - want.offset) <= 2


@pytest.mark.parametrize("sym", [False, True], ids=["asym", "sym"])
def test_window_clips_far_outlier(sym):
    x = torch.cat([torch.randn(2_000_000, generator=torch.Generator().manual_seed(0)),
                   torch.tensor([1000.0])])  # fmt: skip
    obs = HfmgObserver(symmetric=sym)
    obs.update(x)
    res = obs.compute()
    assert 3.0 < res.clip_max < 10.0  # the outlier at 1000 is clipped, the bulk is kept
    assert res.clip_min == pytest.approx(float(x.min()))
    assert res.scale < 15.0 / 127


def test_relu_data_offset_and_degenerate():
    obs = HfmgObserver()
    obs.update(torch.relu(torch.randn(10000)))
    assert obs.compute().offset == -128
    flat = HfmgObserver()
    flat.update(torch.full((10,), 0.0))
    assert (flat.compute().scale, flat.compute().offset) == (1.0, -128)


def test_errors_name_layer():
    obs = HfmgObserver(layer="head_fc")
    with pytest.raises(CalibrationError, match="head_fc"):
        obs.compute()
    with pytest.raises(CalibrationError, match="head_fc"):
        obs.update(torch.tensor([float("nan")]))
