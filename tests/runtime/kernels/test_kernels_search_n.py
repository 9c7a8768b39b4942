"""search-N: shift errors against numpy, the obvious shift on built data (docs/amct.md §4.6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.kernels import cpu_ext
from qdqforge.runtime.kernels.search_n import SearchNObserver, shift_errors


def np_shift_errors(s32: np.ndarray) -> np.ndarray:
    rows = np.moveaxis(s32, 1, 0).reshape(s32.shape[1], -1).astype(np.int64)
    out = np.zeros((16, rows.shape[0]))
    for n in range(1, 17):
        carried = np.clip(np.floor_divide(rows, 2**n), -32768, 32767) * 2**n
        out[n - 1] = ((carried - rows).astype(np.float64) ** 2).sum(axis=1)
    return out


@pytest.mark.parametrize("dtype", [torch.int32, torch.float32], ids=["int32", "float"])
def test_errors_match_numpy(dtype):
    rng = np.random.default_rng(0)
    s32 = rng.normal(size=(3, 4, 5, 5)) * 10.0 ** rng.uniform(1, 9, size=(1, 4, 1, 1))
    s32 = np.clip(np.round(s32), -(2**31), 2**31 - 1)
    got = shift_errors(torch.from_numpy(s32).to(dtype))
    expected = np_shift_errors(torch.from_numpy(s32).to(dtype).double().round().numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def int64_shift_errors(s32: torch.Tensor) -> torch.Tensor:
    """The int64 formulation (each difference exact in int64, squared and summed in float64)."""
    rows = torch.round(s32).to(torch.int64) if s32.is_floating_point() else s32.to(torch.int64)
    rows = rows.clamp(-(2**31), 2**31 - 1).movedim(1, 0).reshape(s32.shape[1], -1)
    return torch.stack([
        ((torch.clamp(rows >> n, -32768, 32767) << n) - rows).double().pow(2).sum(dim=1)
        for n in range(1, 17)
    ])  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.float32, torch.float64])
def test_int32_arithmetic_equals_int64_bit_for_bit(dtype):
    """shift_errors works in int32: same differences, so the same float64 sums exactly, also at
    the int32 and int16-times-2^N edges and beyond int32 (clamped)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 20, 20, generator=gen, dtype=torch.float64)
    x = torch.round(x * 10 ** torch.empty(1, 6, 1, 1, dtype=torch.float64).uniform_(0, 10.5))
    edges = [2**31 - 1, -(2**31), 2**31 + 5, -(2**31) - 7, 32767 * 2**16, -32768 * 2**16,
             32768 * 2**16, 65535, -65536, 0, -1, 1]  # fmt: skip
    x.view(-1)[: len(edges)] = torch.tensor(edges, dtype=torch.float64)
    if not dtype.is_floating_point:
        x = x.clamp(torch.iinfo(dtype).min, torch.iinfo(dtype).max)
    x = x.to(dtype)
    assert torch.equal(shift_errors(x), int64_shift_errors(x))


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_pass_equals_torch_path_bit_for_bit(monkeypatch, threads):
    """The compiled per-value pass (csrc/observe_cpu.cpp) gives the torch path's errors exactly,
    on rows longer than a thread's share, at every int32 edge and both sides of each 2^N."""
    if cpu_ext.cpu_ops() is None:
        pytest.skip("the compiled CPU kernels could not be built here")
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(-(2**31), 2**31 - 1, (2, 3, 300, 300), generator=gen, dtype=torch.int64)
    x[:, 1] >>= torch.randint(0, 31, (2, 300, 300), generator=gen)  # every magnitude
    powers = [s * (2**n + d) for n in range(33) for d in (-1, 0, 1) for s in (1, -1)]
    edges = torch.tensor([*powers, 32767 << 16, -32768 << 16, 0]).clamp(-(2**31), 2**31 - 1)
    x.view(-1)[: len(edges)] = edges
    x = x.to(torch.int32)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        compiled = shift_errors(x)
        monkeypatch.setenv(cpu_ext.ENV_SWITCH, "0")
        reference = shift_errors(x)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(compiled, reference)
    assert torch.equal(compiled, int64_shift_errors(x))


def constructed_batch(gen: torch.Generator) -> torch.Tensor:
    """Channel 0 needs N=5 (multiples of 32 up to int16*32), 1 small odd values (N=1),
    2 multiples of 2^16 near 2^30 (N=16), 3 negative multiples of 2^10 (N=10)."""
    k = torch.randint(-32768, 32768, (8, 64), generator=gen)
    k[:, 0] = 32767
    channels = [k * 32, 2 * torch.randint(-100, 100, (8, 64), generator=gen) + 1,
                torch.full((8, 64), 2**30), -torch.randint(2**14, 2**15, (8, 64), generator=gen)
                * 1024]  # fmt: skip
    return torch.stack(channels, dim=1).to(torch.int32)


def test_picks_obvious_shift_over_batches():
    gen = torch.Generator().manual_seed(0)
    obs = SearchNObserver(4)
    for _ in range(3):
        obs.update(constructed_batch(gen))
    assert obs.compute().tolist() == [5, 1, 16, 10]
    assert obs.error.shape == (16, 4)


def test_shared_shift_and_float_input():
    obs = SearchNObserver(2, channel_axis=-1)
    obs.update(torch.tensor([[131073.0, 3.0], [-131073.0, 5.0]]))
    assert obs.compute().tolist() == [2, 1]
    assert obs.compute(per_channel=False).tolist() == [2, 2]


def test_errors_name_layer():
    obs = SearchNObserver(3, layer="conv_out")
    with pytest.raises(CalibrationError, match=r"conv_out.*no output"):
        obs.compute()
    with pytest.raises(CalibrationError, match="3 output channels"):
        obs.update(torch.zeros(2, 4))
    with pytest.raises(CalibrationError, match="NaN"):
        obs.update(torch.tensor([[float("nan"), 0.0, 0.0]]))
