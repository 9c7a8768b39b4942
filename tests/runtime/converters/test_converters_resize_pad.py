"""Resize (nearest/linear, scales/sizes, coordinate modes) and Pad against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ortcheck import check_op, rand

F32 = np.float32
RESIZE = [
    (
        "nearest_asym",
        {
            "mode": "nearest",
            "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor",
        },
    ),
    (
        "nearest_half_ceil",
        {
            "mode": "nearest",
            "coordinate_transformation_mode": "half_pixel",
            "nearest_mode": "round_prefer_ceil",
        },
    ),
    ("nearest_default", {"mode": "nearest"}),
    (
        "nearest_asym_ceil",
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "ceil"},
    ),
    ("nearest_align", {"mode": "nearest", "coordinate_transformation_mode": "align_corners"}),
    ("nearest_tf", {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}),
    (
        "nearest_tf_floor",
        {
            "mode": "nearest",
            "coordinate_transformation_mode": "tf_half_pixel_for_nn",
            "nearest_mode": "floor",
        },
    ),
    ("linear_half", {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}),
    ("linear_pytorch", {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}),
    ("linear_align", {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    ("linear_asym", {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}),
]


@pytest.mark.parametrize("opset", [13, 18, 19])
@pytest.mark.parametrize("attrs", [c[1] for c in RESIZE], ids=[c[0] for c in RESIZE])
@pytest.mark.parametrize("by", ["scales", "sizes"])
def test_resize_matches_ort(attrs, by, opset):
    inputs = [("x", rand(1, 2, 4, 5), False), ("", None, False)]
    if by == "scales":
        inputs.append(("scales", np.array([1, 1, 2, 1.5], F32), True))
    else:
        inputs += [("", None, False), ("sizes", np.array([1, 2, 7, 3], np.int64), True)]
    check_op("Resize", inputs, attrs, opset=opset)


@pytest.mark.parametrize("transform", ["half_pixel_symmetric", "half_pixel"])
def test_resize_opset19_linear_downscale(transform):
    inputs = [
        ("x", rand(1, 1, 6, 6), False),
        ("", None, False),
        ("scales", np.array([1, 1, 0.5, 0.75], F32), True),
    ]
    attrs = {"mode": "linear", "coordinate_transformation_mode": transform}
    check_op("Resize", inputs, attrs, opset=19)


def test_resize_cubic_is_a_conversion_error():
    from qdqforge.errors import ConversionError

    inputs = [
        ("x", rand(1, 1, 4, 4), False),
        ("", None, False),
        ("scales", np.array([1, 1, 2, 2], F32), True),
    ]
    with pytest.raises(ConversionError, match="cubic"):
        check_op("Resize", inputs, {"mode": "cubic"})


PAD = [
    ("constant", "constant", [0, 0, 1, 2, 0, 0, 2, 1], 1.5),
    ("reflect", "reflect", [0, 0, 1, 2, 0, 0, 2, 1], None),
    ("edge", "edge", [0, 0, 1, 0, 0, 0, 0, 1], None),
    ("negative", "constant", [0, 0, -1, 1, 0, 0, 1, -1], None),
]


@pytest.mark.parametrize("opset", [13, 18, 19, 21])
@pytest.mark.parametrize(("mode", "pads", "value"), [c[1:] for c in PAD], ids=[c[0] for c in PAD])
def test_pad_matches_ort(mode, pads, value, opset):
    inputs = [("x", rand(1, 2, 4, 5), False), ("pads", np.array(pads, np.int64), True)]
    if value is not None:
        inputs.append(("value", np.array(value, F32), True))
    check_op("Pad", inputs, {"mode": mode}, opset=opset)


def test_pad_with_axes():
    inputs = [
        ("x", rand(2, 3, 4), False),
        ("pads", np.array([1, 2, 0, 1], np.int64), True),
        ("", None, False),
        ("axes", np.array([-1, 1], np.int64), True),
    ]
    check_op("Pad", inputs, opset=18)


def test_pad_opset2_attributes():
    check_op("Pad", [("x", rand(2, 3), False)], {"pads": [0, 1, 0, 2], "value": 2.0}, opset=10)
