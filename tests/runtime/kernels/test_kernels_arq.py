"""ARQ weights against an independent numpy computation (docs/amct.md §4.1), all layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdqforge.errors import CalibrationError, QuantizationError
from qdqforge.runtime.kernels.arq import (
    arq_quantize,
    from_channel_major,
    to_channel_major,
)
from qdqforge.runtime.kernels.fake_quant_ref import dequantize_linear, quantize_linear
from qdqforge.runtime.kernels.quant_math import row_blocks


def np_sym_scale(values: np.ndarray, bits: int) -> float:
    lo, hi = abs(values.min()), abs(values.max())
    half = 2 ** (bits - 1)
    scale = lo / half if lo > hi else max(lo, hi) / (half - 1)
    return 1.0 if scale < np.finfo(np.float32).eps else scale


def np_fake_quant(values: np.ndarray, scale: float, bits: int) -> np.ndarray:
    half = 2 ** (bits - 1)
    return np.clip(np.round(values / scale), -half, half - 1) * scale


def np_output_channels(w: np.ndarray, axis: int, groups: int) -> list[tuple]:
    """Index expressions selecting each output channel's weights."""
    if axis == 0:
        return [(c,) for c in range(w.shape[0])]
    cin_g, cout_g = w.shape[0] // groups, w.shape[1]
    return [(slice(o // cout_g * cin_g, (o // cout_g + 1) * cin_g), o % cout_g)
            for o in range(groups * cout_g)]  # fmt: skip


CASES = {
    "conv2d": ((16, 3, 3, 3), 0, 1),
    "conv_grouped": ((8, 2, 3, 3), 0, 4),
    "depthwise": ((6, 1, 3, 3), 0, 6),
    "linear": ((10, 20), 0, 1),
    "conv1d": ((5, 4, 3), 0, 1),
    "conv3d": ((4, 2, 2, 2, 2), 0, 1),
    "convtranspose": ((4, 6, 3, 3), 1, 1),
    "convtranspose_grouped": ((6, 2, 3, 3), 1, 3),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("bits", [8, 4], ids=["int8", "int4"])
def test_per_channel_matches_numpy(case, bits):
    shape, axis, groups = CASES[case]
    w = np.random.default_rng(0).normal(size=shape)
    w[np_output_channels(w, axis, groups)[1]] = 0.0  # an all-zero output channel
    res = arq_quantize(torch.from_numpy(w), bits, True, axis, groups)
    expected = np.zeros_like(w)
    for c, idx in enumerate(np_output_channels(w, axis, groups)):
        scale = np_sym_scale(w[idx], bits)
        assert float(res.scale[c]) == pytest.approx(scale, rel=1e-12)
        expected[idx] = np_fake_quant(w[idx], scale, bits)
    assert float(res.scale[1]) == 1.0
    np.testing.assert_allclose(res.weight.numpy(), expected, rtol=0, atol=1e-15)
    assert res.offset.abs().sum() == 0 and res.weight.shape == w.shape


@pytest.mark.parametrize("bits", [8, 7, 6], ids=["int8", "int7", "int6"])
def test_per_tensor_matches_numpy(bits):
    w = np.random.default_rng(1).normal(size=(8, 4, 3, 3)).astype(np.float32)
    res = arq_quantize(torch.from_numpy(w), bits, channel_wise=False)
    scale = np_sym_scale(w.astype(np.float64), bits)
    assert res.scale.shape == (1,)
    assert float(res.scale[0]) == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(res.weight.numpy(), np_fake_quant(w, scale, bits), atol=1e-6)
    levels = np.unique(np.round(res.weight.numpy() / float(res.scale[0])))
    assert len(levels) <= 2**bits


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_channel_major_round_trip(case):
    shape, axis, groups = CASES[case]
    w = torch.randn(shape)
    m = to_channel_major(w, axis, groups)
    assert m.shape[0] == (shape[1] * groups if axis == 1 else shape[0])
    assert torch.equal(from_channel_major(m, w.shape, axis, groups), w)


def test_errors_name_layer():
    with pytest.raises(CalibrationError, match="fc1"):
        arq_quantize(torch.tensor([[1.0, float("nan")]]), layer="fc1")
    with pytest.raises(QuantizationError, match="num_bits 1"):
        arq_quantize(torch.ones(2, 2), num_bits=1, layer="fc1")


LAYOUTS = {  # shape, channel axis, groups
    "linear_3_blocks": ((5000, 2048), 0, 1),
    "conv": ((96, 640, 3, 3), 0, 1),
    "conv_transpose_grouped": ((640, 48, 3, 3), 1, 2),
    "vector": ((300,), 0, 1),
}


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("channel_wise", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_weight_quantized_in_row_blocks_equals_one_pass(layout, channel_wise, bits):
    """A weight over one block (2^22 values: 2048 rows of 2048, 3 blocks) and weights of other
    layouts come out byte for byte as QuantizeLinear -> int32 -> DequantizeLinear in one pass
    gives them, per channel and per tensor: signed zeros too (values that round to -0 come out
    +0, as through int32)."""
    shape, axis, groups = LAYOUTS[layout]
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(2)) * 0.05
    flat = w.view(-1)
    flat[:7] = torch.tensor([0.0, -0.0, -1e-7, 1e-7, -3e-4, 3e-4, -1.0])  # zeros, -0 roundings
    res = arq_quantize(w, bits, channel_wise, axis, groups)
    m = to_channel_major(w, axis, groups)
    per = res.scale if channel_wise else res.scale[0]
    grid = 0 if channel_wise else None
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    whole = dequantize_linear(
        quantize_linear(m, per, 0, qmin, qmax, grid, torch.int32), per, 0, grid
    )
    want = from_channel_major(whole, w.shape, axis, groups)
    assert res.weight.contiguous().numpy().tobytes() == want.contiguous().numpy().tobytes()
    rounded_to_zero = res.weight.reshape(-1)[2]  # -1e-7: rint gives -0.0, the output +0.0
    assert rounded_to_zero == 0 and not torch.signbit(rounded_to_zero)
    if layout == "linear_3_blocks":
        assert len(row_blocks(w.shape)) == 3
