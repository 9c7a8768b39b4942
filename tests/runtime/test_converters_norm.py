"""BatchNormalization (eval semantics vs ORT) and LayerNormalization."""

from __future__ import annotations

import pytest

from tests.runtime.ortcheck import check_op, rand


@pytest.mark.parametrize("opset", [9, 14, 15, 17])
@pytest.mark.parametrize(
    "shape", [(2, 3), (2, 3, 5), (2, 3, 4, 4), (1, 3, 2, 2, 2)], ids=["1d_flat", "1d", "2d", "3d"]
)
def test_batch_norm_eval_matches_ort(shape, opset):
    c = shape[1]
    inputs = [
        ("x", rand(*shape), False),
        ("bn.weight", rand(c, low=0.5, high=1.5), True),
        ("bn.bias", rand(c), True),
        ("bn.running_mean", rand(c), True),
        ("bn.running_var", rand(c, low=0.5, high=2.0), True),
    ]
    check_op("BatchNormalization", inputs, {"epsilon": 1e-3}, opset=opset)


LN_CASES = [
    ("last", (2, 3, 8), -1, (8,)),
    ("last2", (2, 3, 8), -2, (3, 8)),
    ("axis1", (2, 3, 4), 1, (3, 4)),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(
    ("shape", "axis", "w_shape"), [c[1:] for c in LN_CASES], ids=[c[0] for c in LN_CASES]
)
def test_layer_norm_matches_ort(shape, axis, w_shape, bias):
    inputs = [("x", rand(*shape), False), ("ln.weight", rand(*w_shape), True)]
    if bias:
        inputs.append(("ln.bias", rand(*w_shape), True))
    check_op("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-5})


def test_layer_norm_broadcast_weight():
    inputs = [("x", rand(2, 3, 4), False), ("ln.weight", rand(4), True)]
    check_op("LayerNormalization", inputs, {"axis": 1})
