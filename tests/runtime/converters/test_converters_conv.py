"""Conv / ConvTranspose against onnxruntime: ranks, groups, dilation, pads, auto_pad."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from tests.helpers.ortcheck import (
    assert_matches_ort,
    check_op,
    feeds_of,
    op_model,
    rand,
    with_roles,
)

CONV_CASES = [
    ("1d", (2, 4, 9), (6, 4, 3), {"pads": [1, 1]}),
    ("2d", (2, 4, 7, 7), (6, 4, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("3d", (1, 2, 5, 5, 5), (4, 2, 3, 3, 3), {}),
    ("groups", (2, 4, 6, 6), (8, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
    ("depthwise", (2, 4, 6, 6), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    ("dilation", (1, 3, 9, 9), (4, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ("asym_pads", (1, 3, 6, 6), (4, 3, 3, 3), {"pads": [0, 1, 2, 0]}),
    ("same_upper", (1, 3, 7, 7), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER"}),
    ("same_upper_s2", (1, 3, 7, 8), (4, 3, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("same_lower_s2", (1, 3, 7, 8), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("valid", (1, 3, 7, 7), (4, 3, 3, 3), {"auto_pad": "VALID"}),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"), [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES]
)
def test_conv_matches_ort(x_shape, w_shape, attrs, bias):
    inputs = [("x", rand(*x_shape), False), ("w", rand(*w_shape), True)]
    if bias:
        inputs.append(("b", rand(w_shape[0]), True))
    check_op("Conv", inputs, attrs)


@pytest.mark.parametrize("opset", [17, 21])
def test_conv_with_runtime_weight(opset):
    check_op("Conv", [("x", rand(1, 2, 5, 5), False), ("w", rand(3, 2, 3, 3), False)], opset=opset)


def test_conv_zero_constant_bias_is_dropped():
    inputs = [("x", rand(1, 2, 5, 5), False), ("w", rand(3, 2, 3, 3), True)]
    inputs.append(("b", rand(3) * 0, True))
    model = with_roles(op_model("Conv", inputs), params=["w"])
    module = assert_matches_ort(model, feeds_of(model, inputs))
    conv = next(n for n in module.graph.nodes if n.target is F.conv2d)
    assert conv.args[2] is None


CONVT_CASES = [
    ("2d", (1, 4, 5, 5), (4, 3, 3, 3), {}),
    ("stride_outpad", (2, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "output_padding": [1, 1]}),
    ("pads", (1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("asym_pads", (1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "pads": [0, 1, 1, 0]}),
    ("groups", (1, 4, 5, 5), (4, 2, 3, 3), {"group": 2}),
    ("1d", (1, 4, 7), (4, 2, 3), {"strides": [2]}),
    ("3d", (1, 2, 3, 3, 3), (2, 2, 2, 2, 2), {"strides": [2, 2, 2]}),
    ("output_shape", (1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "output_shape": [10, 10]}),
    ("same_upper", (1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"), [c[1:] for c in CONVT_CASES], ids=[c[0] for c in CONVT_CASES]
)
def test_conv_transpose_matches_ort(x_shape, w_shape, attrs):
    inputs = [("x", rand(*x_shape), False), ("w", rand(*w_shape), True)]
    inputs.append(("b", rand(w_shape[1] * attrs.get("group", 1)), True))
    check_op("ConvTranspose", inputs, attrs)
