"""compare_grid: the int32 path for 8/16-bit integers gives what the int64 definition gives."""

from __future__ import annotations

import numpy as np
import pytest

from qdqforge.graph.quant_compare import GridMismatch, compare_grid


def _definition(name, qa, qb, bits) -> GridMismatch:
    """The int64 formulation, as the module docstring states it."""
    delta = np.abs(np.asarray(qa, np.int64) - np.asarray(qb, np.int64))
    unit = 2 ** (bits - 8)
    steps = (delta + unit // 2) // unit
    return GridMismatch(
        name, int(delta.max(initial=0)), int((steps > 0).sum()), delta.size,
        int((steps > 1).sum()), bits,
    )  # fmt: skip


@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.int8, 8), (np.int16, 16),
                                        (np.uint16, 16), (np.int16, 8)])  # fmt: skip
def test_narrow_integers_match_the_int64_definition(dtype, bits):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    qa = rng.integers(info.min, info.max, size=(3, 1000), endpoint=True).astype(dtype)
    qb = qa.copy()
    flips = rng.integers(-300, 300, size=qa.shape)
    changed = rng.random(qa.shape) < 0.2
    qb[changed] = np.clip(qa.astype(np.int64) + flips, info.min, info.max)[changed]
    qa[0, :2], qb[0, :2] = info.min, info.max  # the widest difference of the type
    got = compare_grid("t", qa, qb, bits)
    assert got == _definition("t", qa, qb, bits)
    assert got.differ > 0 and got.beyond_one > 0 and got.max_steps == info.max - info.min


def test_float_integers_and_wide_grids_take_the_int64_path():
    qa = np.array([0.0, 3.0, 255.0, -7.0], np.float32)
    qb = np.array([0, 4, 0, -7], np.int32)
    assert compare_grid("t", qa, qb) == _definition("t", qa, qb, 8)
    assert compare_grid("t", qa, qb) == GridMismatch("t", 255, 2, 4, 1, 8)
