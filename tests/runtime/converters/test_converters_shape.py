"""Shape-level ops against onnxruntime, plus symbolic shapes that keep the batch dim dynamic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from qdqforge.runtime import reimport
from tests.helpers.ortcheck import assert_matches_ort, check_op, rand, run_ort

I64 = np.int64

RESHAPE = [
    ("plain", (2, 3, 4), [6, 4], 0),
    ("minus_one", (2, 3, 4), [-1, 2], 0),
    ("zero_copies", (2, 3, 4), [0, -1], 0),
    ("allowzero_empty", (0, 3), [3, 0], 1),
]


@pytest.mark.parametrize("opset", [14, 19, 21])
@pytest.mark.parametrize(
    ("shape", "target", "allowzero"), [c[1:] for c in RESHAPE], ids=[c[0] for c in RESHAPE]
)
def test_reshape_matches_ort(shape, target, allowzero, opset):
    inputs = [("x", rand(*shape), False), ("s", np.array(target, I64), True)]
    check_op("Reshape", inputs, {"allowzero": allowzero}, opset=opset)


@pytest.mark.parametrize("target", [[6, 4], [0, -1]], ids=["plain", "zero_copies"])
def test_reshape_opset13_has_no_allowzero(target):
    check_op("Reshape", [("x", rand(2, 3, 4), False), ("s", np.array(target, I64), True)], opset=13)


def test_reshape_with_runtime_shape_tensor():
    check_op("Reshape", [("x", rand(2, 3, 4), False), ("s", np.array([0, 12], I64), False)])


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((2, 3, 4), 1),
        ((2, 3, 4), 0),
        ((2, 3, 4), 3),
        ((2, 3, 4), 2),
        ((2, 3, 4), -1),
        ((5,), 1),
        ((5,), 0),
    ],
    ids=["axis1", "axis0", "axis_rank", "axis2", "neg", "rank1", "rank1_0"],
)
@pytest.mark.parametrize("opset", [13, 21])
def test_flatten_matches_ort(shape, axis, opset):
    check_op("Flatten", [("x", rand(*shape), False)], {"axis": axis}, opset=opset)


def test_flatten_rank1_dynamic():
    check_op("Flatten", [("x", rand(5), False)], {"axis": 1}, dynamic=True)


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1]], ids=["default", "021", "201"])
@pytest.mark.parametrize("opset", [17, 21])
def test_transpose_matches_ort(perm, opset):
    check_op(
        "Transpose", [("x", rand(2, 3, 4), False)], {"perm": perm} if perm else {}, opset=opset
    )


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("axes", [[1], [-1, 1], None], ids=["one", "two", "all"])
def test_squeeze_matches_ort(axes, opset):
    x = rand(2, 1, 3, 1)
    if axes is None:
        inputs, attrs = [("x", x, False)], {}
    elif opset >= 13:
        inputs, attrs = [("x", x, False), ("axes", np.array(axes, I64), True)], {}
    else:
        inputs, attrs = [("x", x, False)], {"axes": axes}
    check_op("Squeeze", inputs, attrs, opset=opset)


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("axes", [[0], [-1], [0, 3], [1, -1]], ids=["0", "neg", "0_3", "1_neg"])
def test_unsqueeze_matches_ort(axes, opset):
    x = rand(2, 3)
    if opset >= 13:
        inputs, attrs = [("x", x, False), ("axes", np.array(axes, I64), True)], {}
    else:
        inputs, attrs = [("x", x, False)], {"axes": axes}
    check_op("Unsqueeze", inputs, attrs, opset=opset)


SHAPE_SLICES = [
    ((None, None), 13),
    ((None, None), 21),
    ((1, None), 15),
    ((-2, -1), 19),
    ((-2, -1), 21),
]


@pytest.mark.parametrize(
    ("bounds", "opset"), SHAPE_SLICES, ids=["all13", "all21", "from1_15", "neg19", "neg21"]
)
def test_shape_matches_ort(bounds, opset):
    attrs = {k: v for k, v in zip(("start", "end"), bounds) if v is not None}
    check_op("Shape", [("x", rand(2, 3, 4), False)], attrs, opset=opset, dynamic=True)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_size_matches_ort(dynamic):
    check_op("Size", [("x", rand(2, 3, 4), False)], dynamic=dynamic, opset=21)


@pytest.mark.parametrize(
    ("shape", "target"),
    [((3, 1), [2, 3, 4]), ((3, 4), [1, 1]), ((1, 4), [3, 1]), ((2, 1, 4), [2, 3, 1])],
    ids=["grow", "ones", "bidir", "keep"],
)
def test_expand_matches_ort(shape, target):
    check_op("Expand", [("x", rand(*shape), False), ("s", np.array(target, I64), True)])


def test_expand_runtime_shape():
    check_op("Expand", [("x", rand(3, 1), False), ("s", np.array([2, 3, 4], I64), False)])


def test_tile_matches_ort():
    check_op("Tile", [("x", rand(2, 3), False), ("r", np.array([2, 1], I64), True)])


DYNAMIC_RESHAPE = """
<ir_version: 9, opset_import: ["" : 17]>
g (float[N, 6, 4] x) => (float[N, 3, 8] y) {
    shape = Shape(x)
    zero = Constant<value = int64 {0}>()
    batch = Gather<axis = 0>(shape, zero)
    batch1 = Unsqueeze(batch, axes0)
    rest = Constant<value = int64[2] {3, 8}>()
    target = Concat<axis = 0>(batch1, rest)
    y = Reshape(x, target)
}
"""


def _dynamic_model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(DYNAMIC_RESHAPE.replace("axes0", "axes0"))
    axes = onnx.numpy_helper.from_array(np.array([0], I64), "axes0")
    model.graph.initializer.append(axes)
    return model


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_dynamic_batch_reshape_runs_on_any_batch(batch):
    model = _dynamic_model()
    assert_matches_ort(model, {"x": rand(batch, 6, 4)})


def test_dynamic_batch_reshape_is_symbolic():
    module = reimport(_dynamic_model())
    code = module.code
    assert "size(0)" in code and "reshape" in code
    assert "tensor(" not in code  # no shape tensors materialized at run time
    y = module(torch.zeros(7, 6, 4))
    assert tuple(y.shape) == (7, 3, 8)
    np.testing.assert_array_equal(
        y.numpy(), run_ort(_dynamic_model(), {"x": np.zeros((7, 6, 4), np.float32)})[0]
    )
