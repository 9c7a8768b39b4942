"""Tiny ONNX files whose constants would expand to ``n`` elements when evaluated.

Each :func:`bomb` is a model of ~100-300 bytes: a graph input ``x`` (float[1]) plus one
amplifying op on constants (or on shapes only known statically), consumed by an ``Add`` so the
big tensor is live. ``amplifier_node`` builds the same op alone on concrete inputs, for the
size-prediction property test.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KINDS = (
    "constant_of_shape",
    "constant_of_shape_1d",
    "expand",
    "tile",
    "range",
    "pad",
    "resize",
    "one_hot",
    "reduce_chain",
    "shape_product",
)


def amplifier(kind: str, n: int) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """The nodes making tensor ``big`` of ``n`` elements (about; ``n`` a power of two) and the
    constants they read."""
    i64 = np.int64
    one = np.ones(1, np.float32)
    if kind == "constant_of_shape":
        return [_node("ConstantOfShape", ["shape"])], {"shape": np.array([n, 1], i64)}
    if kind == "constant_of_shape_1d":
        return [_node("ConstantOfShape", ["shape"])], {"shape": np.array([n], i64)}
    if kind == "expand":
        return [_node("Expand", ["one", "shape"])], {"one": one, "shape": np.array([n], i64)}
    if kind == "tile":
        return [_node("Tile", ["one", "reps"])], {"one": one, "reps": np.array([n], i64)}
    if kind == "range":
        consts = {"start": np.array(0, i64), "limit": np.array(n, i64), "delta": np.array(1, i64)}
        return [_node("Range", ["start", "limit", "delta"])], consts
    if kind == "pad":
        return [_node("Pad", ["one", "pads"])], {"one": one, "pads": np.array([0, n - 1], i64)}
    if kind == "resize":
        side = math.isqrt(n)
        consts = {"img": np.ones((1, 1, 1, 1), np.float32), "roi": np.zeros(0, np.float32)}
        consts["scales"] = np.array([1, 1, side, side], np.float32)
        return [_node("Resize", ["img", "roi", "scales"])], consts
    if kind == "one_hot":
        consts = {"idx": np.array([0], i64), "depth": np.array(n, i64)}
        consts["values"] = np.array([0, 1], np.float32)
        return [_node("OneHot", ["idx", "depth", "values"])], consts
    if kind == "reduce_chain":  # ONNX inference alone cannot see through ReduceMax
        nodes = [
            helper.make_node("ReduceMax", ["pair"], ["m"], name="rmax", keepdims=1),
            _node("ConstantOfShape", ["m"]),
        ]
        return nodes, {"pair": np.array([3, n], i64)}
    if kind == "shape_product":  # the length is the product of two small inputs' dims
        nodes = [
            helper.make_node("Shape", ["a"], ["sa"], name="sa"),
            helper.make_node("Shape", ["b"], ["sb"], name="sb"),
            helper.make_node("Mul", ["sa", "sb"], ["len"], name="mul"),
            _node("ConstantOfShape", ["len"]),
        ]
        return nodes, {}
    raise ValueError(kind)


def bomb(kind: str, n: int) -> onnx.ModelProto:
    """A model whose tensor ``big`` holds ~``n`` elements, read by ``y = ReduceSum(big) + x``."""
    nodes, consts = amplifier(kind, n)
    nodes = [
        *nodes,
        helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
        helper.make_node("Add", ["s", "x"], ["y"], name="add"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])]
    if kind == "shape_product":
        side = math.isqrt(n)
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [side]) for n in "ab"]
    graph = helper.make_graph(
        nodes,
        "bomb",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _node(op: str, inputs: list[str]) -> onnx.NodeProto:
    return helper.make_node(op, inputs, ["big"], name="amplifier")
