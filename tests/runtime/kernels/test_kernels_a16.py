"""IFMR and HFMG on the 16-bit grid (AMCT's A16W8 activations).

IFMR: the streaming observer picks the same clip as the exact all-data search on normal, ReLU
and heavy-tailed (Student-t) data, though its 2^15 histogram bins are wider than a 16-bit step
(the heavy-tailed case is where a bin spans ~10 steps: the uniform-noise model of
``ifmr_histogram`` is what makes it agree). HFMG: with ``num_of_bins`` (<= 8192) far coarser than
the 65,536-step grid the window search still gives a sane grid: it covers the data and its
quantization MSE is thousands of times below the 8-bit one. Offsets are int16 zero points.
"""

from __future__ import annotations

import pytest
import torch

from qdqforge.runtime.calibration.hfmg import HfmgObserver
from qdqforge.runtime.calibration.ifmr import IfmrObserver, ifmr_exact
from qdqforge.runtime.kernels.quant_math import int_range
from tests.helpers.ifmr_batches import KINDS, make_batches


def quant_mse(x: torch.Tensor, params, bits: int) -> float:
    qmin, qmax = int_range(bits)
    q = torch.clamp(torch.round(x / params.scale) + params.offset, qmin, qmax)
    return float(((q - params.offset) * params.scale - x).pow(2).mean())


@pytest.mark.parametrize("pct", [0.999999, 0.999], ids=["p999999", "p999"])
@pytest.mark.parametrize("sym", [False, True], ids=["asym", "sym"])
@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_streaming_ifmr_16_bit_matches_exact(kind, sym, pct):
    batches = make_batches(kind, 16)
    obs = IfmrObserver(num_bits=16, symmetric=sym, max_percentile=pct, min_percentile=pct)
    for b in batches:
        obs.update(b)
    got = obs.compute()
    x = torch.cat(batches).double()
    want = ifmr_exact(x, num_bits=16, symmetric=sym, max_percentile=pct, min_percentile=pct)
    assert got.clip_max == pytest.approx(want.clip_max, rel=1e-9)
    assert (got.scale, got.offset) == (pytest.approx(want.scale, rel=1e-9), want.offset)
    assert quant_mse(x, got, 16) <= 1.0001 * quant_mse(x, want, 16)


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_ifmr_16_bit_offset_is_an_int16_zero_point(kind):
    x = torch.cat(make_batches(kind, 4)).double()
    params = ifmr_exact(x, num_bits=16)
    assert -32768 <= params.offset <= 32767
    if kind == "relu":
        assert params.offset == -32768  # min 0 sits on the bottom of the grid
    else:
        assert not -128 <= params.offset <= 127  # an int8 range would not hold it
    mse8, mse16 = quant_mse(x, ifmr_exact(x, num_bits=8), 8), quant_mse(x, params, 16)
    assert mse16 * 1000 <= mse8


@pytest.mark.parametrize("bins", [1024, 4096, 8192])
@pytest.mark.parametrize("sym", [False, True], ids=["asym", "sym"])
@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_hfmg_16_bit_with_coarse_bins_is_sane(kind, sym, bins):
    batches = make_batches(kind, 4)
    x = torch.cat(batches).double()
    results = {}
    for bits in (8, 16):
        obs = HfmgObserver(num_bits=bits, num_of_bins=bins, symmetric=sym)
        for b in batches:
            obs.update(b)
        results[bits] = obs.compute()
    got = results[16]
    width = (float(x.max()) - float(x.min())) / bins
    assert got.clip_min <= float(x.min()) + width and got.clip_max >= float(x.max()) - width
    assert -32768 <= got.offset <= 32767
    assert quant_mse(x, got, 16) * 1000 <= quant_mse(x, results[8], 8)
