"""The save-time check on a 16-bit tensor: its own integers, judged in int8-equivalent steps.

``d`` int16 integers count as ``round(d / 256)`` int8 steps (half up): float round-off (a few
int16 steps) is no difference, half an int8 step (128) is one, 1.5 int8 steps (384) are more
than one. The same arrays on an int8 grid count every difference as it is.
"""

from __future__ import annotations

import numpy as np
import pytest

from qdqforge.front.save.verify_budget import Comparison, VerifyBudget
from qdqforge.front.save.verify_diffs import grid_errors, output_errors
from qdqforge.graph.quant_compare import compare_grid

T = "t.quant.out"


@pytest.mark.parametrize(
    ("delta", "bits", "differ", "beyond_one"),
    [
        (1, 8, 1, 0),
        (2, 8, 1, 1),
        (1, 16, 0, 0),
        (127, 16, 0, 0),
        (128, 16, 1, 0),
        (383, 16, 1, 0),
        (384, 16, 1, 1),
    ],
)
def test_steps_are_int8_equivalent(delta, bits, differ, beyond_one):
    a = np.array([0, 10, -20], np.int64)
    b = a.copy()
    b[1] += delta
    got = compare_grid(T, a, b, bits)
    assert (got.max_steps, got.bits) == (delta, bits)
    assert (got.differ, got.beyond_one) == (differ, beyond_one)


def judge(a: np.ndarray, b: np.ndarray, bits: int, name: str = "qdq_vs_deploy"):
    y = [np.ones(3)]
    tensors = grid_errors([T], {T: a}, {T: b}, {T: bits})
    comparison = Comparison(name, "reference", tensors, output_errors(["y"], y, y))
    return comparison.violation(VerifyBudget())


def test_float_round_off_on_int16_is_no_fault_but_a_wrong_scale_is():
    rng = np.random.default_rng(0)
    a = rng.integers(-32768, 32767, 20000).astype(np.int16)
    noisy = (a + rng.integers(-3, 4, a.size)).clip(-32768, 32767).astype(np.int16)
    assert judge(a, noisy, 16) is None
    assert judge(a, noisy, 8) is not None  # the same integers read as int8 steps: a fault
    scaled = np.round(a / 1.02).astype(np.int16)  # the scale 2% off
    violation = judge(a, scaled, 16)
    assert violation is not None and violation.tensor == T
    assert "of its 16-bit grid" in violation.reason
