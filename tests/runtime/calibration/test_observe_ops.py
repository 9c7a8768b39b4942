"""Compiled calibration passes (csrc/observe_cpu.cpp) vs the torch path: bit for bit.

Each case streams the same batches through an IFMR or HFMG observer twice, once with the
compiled kernels and once with ``QDQFORGE_FUSED=0`` (the torch ops they replace), and requires
equal state (histogram statistics, tails, evicted values), equal candidate losses / window
errors and the same scale, offset and clips: the same candidates and the same choice.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qdqforge.errors import CalibrationError
from qdqforge.runtime.calibration import hfmg, ifmr, ifmr_histogram
from qdqforge.runtime.calibration.hfmg import HfmgObserver
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.calibration.observe_ops import observe_ops, row_sums
from qdqforge.runtime.kernels.quant_math import check_finite

pytestmark = pytest.mark.skipif(observe_ops() is None, reason="compiled kernels unavailable")


@contextlib.contextmanager
def torch_path():
    old = os.environ.get("QDQFORGE_FUSED")
    os.environ["QDQFORGE_FUSED"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["QDQFORGE_FUSED"]
        else:
            os.environ["QDQFORGE_FUSED"] = old


def batches_of(kind: str, seed: int = 0, count: int = 3, size: int = 4096) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        x = torch.randn(size, generator=gen, dtype=torch.float64)
        x = {
            "normal": x,
            "relu": torch.relu(x),
            "heavy": x / torch.randn(size, generator=gen, dtype=torch.float64).abs().clamp(1e-3),
            "uniform": torch.rand(size, generator=gen, dtype=torch.float64) * 6 - 1,
            "integers": torch.round(x * 3),
            "constant": torch.full((size,), 0.5, dtype=torch.float64),
            "zeros": torch.zeros(size, dtype=torch.float64),
            "signed_zeros": torch.where(x > 0, 0.0, -0.0) + (x > 2.5) * x,
            "tiny": x * 1e-38,
            "huge": x * 1e30,
            "growing": x * 4.0**i,
            "shrinking": x * 4.0 ** (-i),
            "ragged": x[: 1 + (size >> (2 * i))],
        }[kind]
        out.append(x.float())
    return out


KINDS = [
    "normal",
    "relu",
    "heavy",
    "uniform",
    "integers",
    "constant",
    "zeros",
    "signed_zeros",
    "tiny",
    "huge",
    "growing",
    "shrinking",
    "ragged",
]


def ifmr_run(batches, **options) -> tuple[IfmrObserver, object, torch.Tensor]:
    observer = IfmrObserver(**options)
    for x in batches:
        observer.update(x)
    return observer, observer.compute(), observer.candidate_losses()[1]


def assert_same_ifmr(batches, **options) -> None:
    compiled = ifmr_run(batches, **options)
    with torch_path():
        reference = ifmr_run(batches, **options)
    (a, params_a, losses_a), (b, params_b, losses_b) = compiled, reference
    assert a.numel == b.numel and a._hist.radius == b._hist.radius
    assert torch.equal(a._hist.stats, b._hist.stats)
    for tail_a, tail_b in ((a._top, b._top), (a._bottom, b._bottom)):
        assert torch.equal(tail_a.values, tail_b.values) and tail_a.evicted == tail_b.evicted
    assert torch.equal(losses_a, losses_b)
    assert tuple(params_a) == tuple(params_b)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("sym", [False, True], ids=["asym", "sym"])
@pytest.mark.parametrize("kind", KINDS)
def test_ifmr_same_state_and_choice(kind, sym, bits):
    assert_same_ifmr(batches_of(kind), num_bits=bits, symmetric=sym, expected_batches=3)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("kind", ["normal", "relu", "heavy", "signed_zeros", "ragged"])
def test_ifmr_histogram_chunks_counted_apart_added_in_order(kind, threads, monkeypatch):
    """Chunks of 1,000 values: 5 per 4,096-value batch, counted on the threads a round at a
    time (2, 2, 1 with two threads) and added in chunk order, as the torch path adds its
    per-chunk bincounts; the statistics are the torch path's bit for bit."""
    for module in (ifmr, ifmr_histogram):
        monkeypatch.setattr(module, "HISTOGRAM_CHUNK", 1000)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert_same_ifmr(batches_of(kind, seed=threads), num_bits=8, expected_batches=3)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_ifmr_other_dtypes(dtype):
    batches = [x.to(dtype) for x in batches_of("heavy", seed=3)]
    assert_same_ifmr(batches, expected_batches=None)


def test_ifmr_low_percentile_takes_topk_for_large_tails():
    batches = batches_of("normal", seed=5, count=2, size=300_000)  # cap ~6000 > heap limit
    assert_same_ifmr(batches, max_percentile=0.99, min_percentile=0.98, expected_batches=2)


def test_ifmr_batch_longer_than_a_histogram_chunk():
    x = torch.randn((1 << 22) + 7, generator=torch.Generator().manual_seed(1))
    assert_same_ifmr([x], expected_batches=1)


@pytest.mark.parametrize("seed", range(8))
def test_ifmr_narrow_search_ranges(seed):
    gen = torch.Generator().manual_seed(seed)
    start = float(torch.rand(1, generator=gen)) * 0.5 + 0.5
    options = {"search_range": (start, start + 0.3), "search_step": 0.007}
    assert_same_ifmr(batches_of("heavy", seed=seed), expected_batches=3, **options)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    hnp.arrays(np.float32, st.integers(1, 400), elements=finite),
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from([8, 16]),
)
def test_ifmr_adversarial_values(values, parts, sym, bits):
    batches = [torch.from_numpy(p.copy()) for p in np.array_split(values, parts) if p.size]
    assert_same_ifmr(batches, num_bits=bits, symmetric=sym, expected_batches=len(batches))


def hfmg_run(batches, **options) -> tuple[HfmgObserver, object, list, torch.Tensor]:
    observer = HfmgObserver(**options)
    for x in batches:
        observer.update(x)
    windows = hfmg.candidate_windows(observer.hist)
    errors = hfmg.window_errors(observer.hist, torch.tensor(windows), observer.num_bits)
    return observer, observer.compute(), windows, errors


def assert_same_hfmg(batches, **options) -> None:
    a, params_a, windows_a, errors_a = hfmg_run(batches, **options)
    with torch_path():
        b, params_b, windows_b, errors_b = hfmg_run(batches, **options)
    assert torch.equal(a.hist, b.hist) and (a.lo, a.hi) == (b.lo, b.hi)
    assert windows_a == windows_b and torch.equal(errors_a, errors_b)
    assert tuple(params_a) == tuple(params_b)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("kind", ["normal", "relu", "heavy", "integers", "signed_zeros", "huge"])
def test_hfmg_same_windows_errors_and_choice(kind, bits):
    assert_same_hfmg(batches_of(kind, seed=2), num_bits=bits, num_of_bins=512)


@pytest.mark.parametrize("bins", [1024, 4096])
def test_hfmg_sixteen_bits_at_realistic_bins(bins):
    assert_same_hfmg(batches_of("heavy", seed=4, count=2), num_bits=16, num_of_bins=bins)


@given(hnp.arrays(np.float32, st.integers(2, 300), elements=finite), st.booleans())
def test_hfmg_adversarial_values(values, sym):
    batches = [torch.from_numpy(p.copy()) for p in np.array_split(values, 2) if p.size]
    assert_same_hfmg(batches, num_of_bins=128, symmetric=sym)


@pytest.mark.parametrize("observer", [IfmrObserver, HfmgObserver])
def test_nonfinite_batches_raise_the_same_error(observer):
    x = torch.randn(100)
    x[[3, 50]] = torch.tensor([float("nan"), float("-inf")])
    with pytest.raises(CalibrationError) as compiled:
        observer(layer="conv1").update(x)
    with torch_path(), pytest.raises(CalibrationError) as reference:
        observer(layer="conv1").update(x)
    assert str(compiled.value) == str(reference.value)
    assert "2 of 100" in str(compiled.value)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [1, 3, 8])
@pytest.mark.parametrize("width", [1, 7, 255, 4097, 16384, 32768])
def test_row_sums_equal_torch_row_reduction(width, rows, threads):
    gen = torch.Generator().manual_seed(width * 10 + rows)
    err = torch.randn(rows, width, dtype=torch.float64, generator=gen)
    err = err * torch.rand(rows, width, dtype=torch.float64, generator=gen).pow(8) * 1e6
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert torch.equal(row_sums(err), err.sum(dim=1))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bins", [512, 1024, 4096])
@pytest.mark.parametrize("kind", ["normal", "relu", "heavy", "integers"])
def test_hfmg_fast_window_errors_equal(kind, bins):
    observer = HfmgObserver(num_bits=8, num_of_bins=bins)
    for x in batches_of(kind, seed=6):
        observer.update(x)
    windows = torch.tensor(hfmg.candidate_windows(observer.hist))
    windows = windows[(windows[:, 1] - windows[:, 0] + 1) >= 256]
    compiled = hfmg.window_errors_fast(observer.hist, windows, 8)
    with torch_path():
        reference = hfmg.window_errors_fast(observer.hist, windows, 8)
    assert len(windows) > 1 and torch.equal(compiled, reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("bad", [0, 1, 7])
def test_check_finite_counts_like_torch(dtype, bad):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(bad)).to(dtype)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf")] * 3)[:bad]
    x[torch.arange(bad) * 97] = specials.to(dtype)
    messages = []
    for context in (contextlib.nullcontext(), torch_path()):
        with context:
            try:
                check_finite(x, "fc", "weight")
                messages.append(None)
            except CalibrationError as e:
                messages.append(str(e))
    assert messages[0] == messages[1] and (messages[0] is None) == (bad == 0)
