"""AdaRound on a seeded conv and linear layer: on ARQ's grid, at most one step from nearest, and a
lower layer-output error than ARQ on the calibration data (measured with torch's own op)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qdqforge.runtime.calibration.adaround import AdaRoundParams, adaround
from qdqforge.runtime.calibration.layer_gram import GramAccumulator, RowGeometry
from qdqforge.runtime.kernels.arq import arq_quantize, arq_scale, to_channel_major

CASES = {
    "conv": (
        RowGeometry("conv", 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
        (16, 8, 3, 3),
        (4, 8, 10, 10),
        True,
        lambda x, w: F.conv2d(x, w, padding=1),
    ),
    "linear": (RowGeometry("dense"), (24, 48), (64, 48), False, lambda x, w: x @ w.t()),
}


def calibrate(case: str, seed: int = 0):
    geo, w_shape, x_shape, channel_wise, op = CASES[case]
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(w_shape, generator=gen) * 0.1
    batches = [torch.relu(torch.randn(x_shape, generator=gen) + 0.3) for _ in range(3)]
    acc = GramAccumulator(geo)
    for x in batches:
        acc.update(x)
    return w, batches, acc, channel_wise, op


def output_error(op, batches, w_q, w) -> float:
    return float(sum((op(x, w_q) - op(x, w)).double().square().sum() for x in batches))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_adaround_rounds_on_the_arq_grid_and_beats_nearest(case):
    w, batches, acc, channel_wise, op = calibrate(case)
    m = to_channel_major(w)
    scale = arq_scale(m, 8, channel_wise)
    params = AdaRoundParams(num_iteration=400)
    result = adaround(m, scale, acc.factor(), acc.rows, params)

    ints = result.integers
    assert torch.equal(ints, ints.round()) and ints.min() >= -128 and ints.max() <= 127
    torch.testing.assert_close(result.weight, ints * scale.reshape(-1, 1), rtol=0, atol=0)
    nearest = torch.round(m / scale.reshape(-1, 1)).clamp(-128, 127)
    assert (ints - nearest).abs().max() <= 1
    assert result.changed == int((ints != nearest).sum()) > 0
    arq = arq_quantize(w, 8, channel_wise).weight
    assert torch.equal(arq.reshape(m.shape), nearest * scale.reshape(-1, 1))
    ada_err = output_error(op, batches, result.weight.reshape(w.shape), w)
    arq_err = output_error(op, batches, arq, w)
    assert ada_err < 0.85 * arq_err
    assert result.loss_adaround == pytest.approx(ada_err / acc.rows, rel=1e-3)
    assert result.loss_nearest == pytest.approx(arq_err / acc.rows, rel=1e-3)


def test_progress_counts_every_step():
    w, _, acc, channel_wise, _ = calibrate("linear")
    m = to_channel_major(w)
    steps = []
    adaround(m, arq_scale(m, 8, channel_wise), acc.factor(), acc.rows,
             AdaRoundParams(num_iteration=250), on_steps=steps.append)  # fmt: skip
    assert sum(steps) == 250


def test_grid_edges_stay_in_range_on_4_bits():
    w, _, acc, _, _ = calibrate("conv", seed=1)
    m = to_channel_major(w)
    scale = arq_scale(m, 4, True)
    result = adaround(m, scale, acc.factor(), acc.rows, AdaRoundParams(100, num_bits=4))
    assert result.integers.min() >= -8 and result.integers.max() <= 7
    assert (result.integers == 7).any() or (result.integers == -8).any()
