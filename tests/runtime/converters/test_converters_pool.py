"""MaxPool / AveragePool / Global pools against onnxruntime."""

from __future__ import annotations

import pytest

from tests.helpers.ortcheck import check_op, rand

MAX = [
    ("basic", (1, 2, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("pads", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("asym", (1, 2, 7, 7), {"kernel_shape": [3, 3], "pads": [0, 1, 2, 0]}),
    ("ceil", (1, 2, 7, 7), {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    ("dilation", (1, 2, 9, 9), {"kernel_shape": [3, 3], "dilations": [2, 2]}),
    (
        "same_upper",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    (
        "same_lower",
        (1, 2, 7, 8),
        {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
    ),
    ("1d", (1, 2, 9), {"kernel_shape": [3], "strides": [2]}),
    ("3d", (1, 2, 4, 4, 4), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}),
]


@pytest.mark.parametrize("opset", [12, 17])
@pytest.mark.parametrize(("shape", "attrs"), [c[1:] for c in MAX], ids=[c[0] for c in MAX])
def test_max_pool_matches_ort(shape, attrs, opset):
    check_op("MaxPool", [("x", rand(*shape), False)], attrs, opset=opset)


AVG = [
    ("basic", (1, 2, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    (
        "pads_exclude",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    (
        "pads_include",
        (1, 2, 7, 7),
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    ("ceil", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (
        "asym_include",
        (1, 2, 6, 6),
        {"kernel_shape": [3, 3], "pads": [0, 1, 1, 0], "count_include_pad": 1},
    ),
    ("1d", (1, 2, 9), {"kernel_shape": [3], "strides": [2]}),
]


@pytest.mark.parametrize("opset", [11, 17, 19])
@pytest.mark.parametrize(("shape", "attrs"), [c[1:] for c in AVG], ids=[c[0] for c in AVG])
def test_average_pool_matches_ort(shape, attrs, opset):
    check_op("AveragePool", [("x", rand(*shape), False)], attrs, opset=opset)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize(
    "shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 3, 3)], ids=["1d", "2d", "3d"]
)
def test_global_pool_matches_ort(op, shape):
    check_op(op, [("x", rand(*shape), False)], dynamic=True)
