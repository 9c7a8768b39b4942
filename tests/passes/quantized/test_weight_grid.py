"""Weight integers computed in row blocks (``passes.grids.weight_grid``) are those of one pass over
the whole weight: rint(W / s) clipped, per channel along either axis, per tensor, for weights of
several blocks and of none."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qdqforge.errors import PassError
from qdqforge.passes.grids.weight_grid import clamped_weights, off_grid_count, weight_integers
from qdqforge.runtime.kernels.quant_math import row_blocks

CASES = {  # shape, axis of the scales (None: one scale)
    "rows_over_blocks_axis0": ((5000, 1024), 0),
    "conv_axis1": ((96, 640, 3, 3), 1),
    "per_tensor": ((3000, 2048), None),
    "vector": ((10,), 0),
    "scalar": ((), None),
}


def _one_pass(w, scale, axis, qmin, qmax):
    shape = [-1 if d == axis else 1 for d in range(w.ndim)] if axis is not None else []
    rounded = np.rint(w / scale.reshape(shape))
    return np.clip(rounded, qmin, qmax).astype(np.int8), int((rounded > qmax).sum())


@pytest.mark.parametrize("dst_type", [None, "INT4"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_blocks_give_the_one_pass_integers(case, dst_type):
    shape, axis = CASES[case]
    rng = np.random.default_rng(3)
    w = (rng.standard_normal(shape) * 2).astype(np.float32)
    channels = 1 if axis is None else shape[axis]
    scale = rng.uniform(0.004, 0.03, channels).astype(np.float32)
    rec = SimpleNamespace(dst_type=dst_type)
    qmin, qmax = (-8, 7) if dst_type else (-128, 127)
    want, clamped = _one_pass(w, scale, axis, qmin, qmax)
    got = weight_integers(w, scale, axis, rec)
    assert got.dtype == np.int8 and got.shape == w.shape
    np.testing.assert_array_equal(got, want)
    assert clamped > 0  # the clip is exercised
    assert clamped_weights(w, scale, axis, rec) == clamped
    deq = want.astype(np.float32) * scale.reshape(
        [-1 if d == axis else 1 for d in range(w.ndim)] if axis is not None else [])  # fmt: skip
    assert off_grid_count(w, scale, axis, rec, "layer") == int(np.count_nonzero(deq != w)) > 0
    assert off_grid_count(deq, scale, axis, rec, "layer") == 0  # on the grid: nothing off
    moved = np.array(deq)  # an ndarray also for the 0-d case (a numpy scalar has no views)
    moved.reshape(-1)[[0, -1]] += np.float32(scale.min() / 3)  # first and last block
    assert off_grid_count(moved, scale, axis, rec, "layer") == min(2, moved.size)
    if case == "rows_over_blocks_axis0":
        assert len(row_blocks(w.shape)) == 2  # the per-channel scales are sliced with the rows


@pytest.mark.parametrize("axis", [0, None])
def test_transposed_integers_are_the_transpose_written_block_by_block(axis):
    """MatMulInteger's layout of a Linear weight: ``W_q^T`` contiguous, over several row blocks,
    equal to the one-pass integers transposed (the clip exercised)."""
    shape = (5000, 1024)
    rng = np.random.default_rng(4)
    w = (rng.standard_normal(shape) * 2).astype(np.float32)
    scale = rng.uniform(0.004, 0.03, 1 if axis is None else shape[0]).astype(np.float32)
    want, clamped = _one_pass(w, scale, axis, -128, 127)
    got = weight_integers(w, scale, axis, SimpleNamespace(dst_type=None), transposed=True)
    assert got.dtype == np.int8 and got.flags.c_contiguous and got.shape == shape[::-1]
    np.testing.assert_array_equal(got, want.T)
    assert clamped > 0 and len(row_blocks(shape)) == 2


def test_transposed_integers_need_a_matrix():
    with pytest.raises(PassError, match="2-D"):
        weight_integers(np.zeros((2, 3, 4), np.float32), np.ones(1, np.float32), None,
                        SimpleNamespace(dst_type=None), transposed=True)  # fmt: skip
