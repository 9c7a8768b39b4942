"""quant_math: AMCT scale/offset formulas against independent numpy (docs/amct.md §4.0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.kernels.quant_math import (
    FLT_EPSILON,
    asymmetric_scale_offset,
    check_finite,
    int_range,
    symmetric_scale,
)


def np_symmetric(lo: float, hi: float, bits: int) -> float:
    half = 2 ** (bits - 1)
    scale = abs(lo) / half if abs(lo) > abs(hi) else max(abs(lo), abs(hi)) / (half - 1)
    return 1.0 if scale < np.finfo(np.float32).eps else scale


def np_asymmetric(lo: float, hi: float, bits: int) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (2**bits - 1)
    if scale < np.finfo(np.float32).eps:
        return 1.0, -(2 ** (bits - 1))
    return scale, int(np.round(-(2 ** (bits - 1)) - lo / scale))


def test_int_range():
    assert int_range(8) == (-128, 127)
    assert int_range(4) == (-8, 7)
    assert int_range(8, signed=False) == (0, 255)


@pytest.mark.parametrize("bits", [8, 4, 6, 7], ids=lambda b: f"int{b}")
def test_symmetric_per_channel_matches_numpy(bits):
    rng = np.random.default_rng(bits)
    lo, hi = -rng.exponential(size=64), rng.exponential(size=64)
    lo[:3], hi[:3] = 0.0, 0.0  # degenerate channels
    scale, offset = symmetric_scale(torch.from_numpy(lo), torch.from_numpy(hi), bits)
    expected = [np_symmetric(a, b, bits) for a, b in zip(lo, hi)]
    np.testing.assert_allclose(scale.numpy(), expected, rtol=1e-12)
    assert offset.abs().sum() == 0


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(-1.0, 1.27, 0.01), (-1.28, 1.0, 0.01), (-2.0, 2.0, 2.0 / 127), (0.0, 0.0, 1.0)],
    ids=["max_side", "min_side_div128", "tie_div127", "zero_range"],
)
def test_symmetric_rules(lo, hi, expected):
    scale, _ = symmetric_scale(lo, hi, 8)
    assert float(scale) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bits", [8, 4], ids=lambda b: f"int{b}")
def test_asymmetric_matches_numpy(bits):
    rng = np.random.default_rng(7)
    lo, hi = rng.normal(size=200), rng.normal(size=200) + 0.5
    scale, offset = asymmetric_scale_offset(torch.from_numpy(lo), torch.from_numpy(hi), bits)
    for i, (a, b) in enumerate(zip(lo, hi)):
        s, o = np_asymmetric(a, b, bits)
        assert float(scale[i]) == pytest.approx(s, rel=1e-12)
        assert int(offset[i]) == o


@pytest.mark.parametrize(
    ("lo", "hi", "scale", "offset"),
    [
        (0.0, 2.55, 0.01, -128),  # post-ReLU data: offset -128 (docs/amct.md §3)
        (-2.55, 0.0, 0.01, 127),
        (0.5, 2.55, 0.01, -128),  # range forced to contain 0
        (0.0, 0.0, 1.0, -128),
        (-1e-9, 1e-9, 1.0, -128),  # scale below FLT_EPSILON
    ],
    ids=["relu", "negative", "contains_zero", "zero_range", "tiny_range"],
)
def test_asymmetric_rules(lo, hi, scale, offset):
    s, o = asymmetric_scale_offset(lo, hi, 8)
    assert float(s) == pytest.approx(scale, rel=1e-12)
    assert int(o) == offset


def test_float32_inputs_keep_dtype():
    s, o = asymmetric_scale_offset(torch.tensor(-1.0), torch.tensor(3.0), 8)
    assert s.dtype == torch.float32 and o.dtype == torch.int64
    assert float(s) > FLT_EPSILON


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_check_finite_names_layer(bad):
    x = torch.tensor([1.0, bad])
    with pytest.raises(CalibrationError, match=r"conv1.*skip_layers"):
        check_finite(x, layer="conv1")
    check_finite(torch.ones(3), layer="conv1")
