"""Concat, Split, Slice, Gather, Range, Trilu, Einsum, ArgMax/ArgMin against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

from tests.helpers.ortcheck import check_op, rand

I64 = np.int64
BIG = np.iinfo(np.int64).max


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_matches_ort(axis):
    a, b = rand(2, 3, 4), rand(2, 3, 4)
    check_op("Concat", [("a", a, False), ("b", b, True)], {"axis": axis})


SPLIT = [
    ("equal_attr", 13, None, {"axis": 1}, 3),
    ("sizes_input", 13, [1, 2, 3], {"axis": 1}, 3),
    ("sizes_attr", 11, [2, 4], {"axis": 1}, 2),
    ("num_outputs", 18, None, {"axis": 1, "num_outputs": 3}, 3),
    ("num_outputs_uneven", 18, None, {"axis": 0, "num_outputs": 2}, 2),
]


@pytest.mark.parametrize(
    ("opset", "sizes", "attrs", "n"), [c[1:] for c in SPLIT], ids=[c[0] for c in SPLIT]
)
def test_split_matches_ort(opset, sizes, attrs, n):
    x = rand(5, 6)
    inputs = [("x", x, False)]
    attrs = dict(attrs)
    if sizes is not None and opset >= 13:
        inputs.append(("split", np.array(sizes, I64), True))
    elif sizes is not None:
        attrs["split"] = sizes
    check_op("Split", inputs, attrs, opset=opset, n_outputs=n)


SLICE = [
    ("basic", [1], [3], None, None),
    ("axes", [0, 1], [2, 3], [1, 2], None),
    ("negative", [-3], [-1], [2], None),
    ("int64_max_end", [1], [BIG], [1], None),
    ("steps", [0, 3], [BIG, 0], [1, 2], [2, -1]),
    ("neg_step_full", [-1], [-BIG], [0], [-1]),
    ("neg_axes", [1], [3], [-1], [1]),
]


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"), [c[1:] for c in SLICE], ids=[c[0] for c in SLICE]
)
def test_slice_matches_ort(starts, ends, axes, steps, opset):
    inputs = [
        ("x", rand(4, 5, 6), False),
        ("starts", np.array(starts, I64), True),
        ("ends", np.array(ends, I64), True),
    ]
    if axes is not None or steps is not None:
        axes = axes if axes is not None else list(range(len(starts)))
        inputs.append(("axes", np.array(axes, I64), True))
    if steps is not None:
        inputs.append(("steps", np.array(steps, I64), True))
    check_op("Slice", inputs, opset=opset)


def test_slice_runtime_starts():
    inputs = [
        ("x", rand(4, 5), False),
        ("starts", np.array([1, -4], I64), False),
        ("ends", np.array([3, BIG], I64), False),
    ]
    check_op("Slice", inputs)


def test_slice_opset9_attributes():
    check_op(
        "Slice", [("x", rand(4, 5), False)], {"starts": [1], "ends": [3], "axes": [1]}, opset=9
    )


GATHER = [
    ("scalar", 0, np.array(1, I64)),
    ("scalar_neg", 1, np.array(-1, I64)),
    ("vector", 1, np.array([0, 2, -1], I64)),
    ("matrix", 0, np.array([[0, 1], [-1, 2]], I64)),
    ("neg_axis", -1, np.array([3, 0], I64)),
]


@pytest.mark.parametrize(("axis", "idx"), [c[1:] for c in GATHER], ids=[c[0] for c in GATHER])
@pytest.mark.parametrize("idx_init", [True, False], ids=["const_idx", "runtime_idx"])
def test_gather_matches_ort(axis, idx, idx_init):
    check_op("Gather", [("x", rand(3, 4, 5), False), ("i", idx, idx_init)], {"axis": axis})


def test_gather_on_parameter_is_embedding():
    ids = np.array([[0, 3, 2], [1, 1, 4]], I64)
    module = check_op("Gather", [("emb.weight", rand(5, 8), True), ("ids", ids, False)])
    assert [n.target for n in module.graph.nodes if n.op == "call_function"] == [F.embedding]


@pytest.mark.parametrize(
    ("bounds", "dtype"),
    [((0, 10, 3), I64), ((1.0, 2.0, 0.25), np.float32), ((5, 0, -2), np.int32)],
    ids=["int64", "float", "neg_int32"],
)
@pytest.mark.parametrize("runtime", [False, True], ids=["folded", "runtime"])
def test_range_matches_ort(bounds, dtype, runtime):
    inputs = [(n, np.array(v, dtype), not runtime) for n, v in zip(("s", "l", "d"), bounds)]
    check_op("Range", inputs)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 1, -1])
def test_trilu_matches_ort(upper, k):
    inputs = [("x", rand(2, 4, 5), False)]
    if k is not None:
        inputs.append(("k", np.array(k, I64), True))
    check_op("Trilu", inputs, {"upper": upper})


@pytest.mark.parametrize(
    ("eq", "shapes"),
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
        ("ii->i", [(3, 3)]),
    ],
    ids=["matmul", "attention", "diag"],
)
def test_einsum_matches_ort(eq, shapes):
    inputs = [(f"x{i}", rand(*s), False) for i, s in enumerate(shapes)]
    check_op("Einsum", inputs, {"equation": eq})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(
    ("axis", "keepdims", "last"),
    [(1, 1, 0), (-1, 0, 0), (0, 1, 1)],
    ids=["keep", "drop", "last_index"],
)
def test_arg_matches_ort(op, axis, keepdims, last):
    x = np.array([[1, 3, 3, 0], [2, 2, 1, 2], [0, 5, 5, 5]], np.float32)
    check_op(op, [("x", x, False)], {"axis": axis, "keepdims": keepdims, "select_last_index": last})


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_init", [True, False], ids=["const_idx", "runtime_idx"])
def test_gather_elements_matches_ort(axis, idx_init):
    idx = np.array([[0, -1, 2], [1, 0, -2]], I64)
    check_op("GatherElements", [("x", rand(3, 3), False), ("i", idx, idx_init)], {"axis": axis})


GATHER_ND = [
    ("pairs", (2, 3, 4), np.array([[0, 1], [1, -1]], I64), 0),
    ("full", (2, 3), np.array([[1, 2], [0, 0]], I64), 0),
    ("batch1", (2, 3, 4), np.array([[[1]], [[2]]], I64), 1),
    ("batch1_pairs", (2, 3, 4), np.array([[0, 3], [2, 1]], I64), 1),
]


@pytest.mark.parametrize(
    ("shape", "idx", "batch_dims"), [c[1:] for c in GATHER_ND], ids=[c[0] for c in GATHER_ND]
)
def test_gather_nd_matches_ort(shape, idx, batch_dims):
    check_op(
        "GatherND", [("x", rand(*shape), False), ("i", idx, False)], {"batch_dims": batch_dims}
    )
