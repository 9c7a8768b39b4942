"""Catalogue rows: untrusted ONNX files (memory bombs, inputs no random array can fill).

A ~130-byte file whose constants expand to 8 GiB is refused before anything is evaluated, by
every call that would run it (onnxruntime stages, the numeric diff, reimport); ``passes run
--random-inputs`` refuses inputs it cannot draw (huge, negative or non-tensor/STRING); a pass
that turns outputs into NaN fails the numeric check.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import qdqforge
from qdqforge.errors import GraphError, InputDataError, NumericMismatchError
from qdqforge.graph.diff.graph_diff import diff_graphs
from qdqforge.passes.debug.inputs import random_feeds
from qdqforge.passes.debug.instruments import NumericCheck
from qdqforge.passes.debug.run import run_debug
from qdqforge.passes.infra.pipeline import run_pipeline
from tests.reliability.bombs import bomb
from tests.reliability.catalogue import Case

BIG = 1 << 31


def _saved(w, model: onnx.ModelProto, name: str = "m.onnx") -> str:
    path = w.tmp / name
    onnx.save(model, path)
    return str(path)


def _check_ort(kind: str):
    def call(w):
        proto = onnx.load(_saved(w, bomb(kind, BIG)))
        return run_debug(proto, ["canonicalize"], feeds=random_feeds(proto))

    return call


def _diff(w):
    proto = bomb("range", BIG)
    return diff_graphs(proto, proto, inputs=random_feeds(proto))


def _one_input(elem_type: int, dims: list) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", elem_type, dims)
    y = helper.make_tensor_value_info("y", elem_type, None)
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _negative_dim() -> onnx.ModelProto:
    model = _one_input(TensorProto.FLOAT, [2, 3])
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -3
    return model


def _sequence_input() -> onnx.ModelProto:
    model = _one_input(TensorProto.FLOAT, [2])
    seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2])
    model.graph.input[0].CopyFrom(seq)
    return model


def overflowing_bn() -> onnx.ModelProto:
    """``BN(Conv(Concat(x/1e3, x/1e3)))``, weights [2, -2], BN scale 3e38: outputs 0; folding
    the BN overflows the weights to +-inf and the outputs become NaN."""

    def const(name, values):
        return numpy_helper.from_array(np.asarray(values, np.float32), name)

    inits = [const("k", [1e-3]), const("w", np.array([2.0, -2.0]).reshape(1, 2, 1, 1))]
    inits += [const(n, v) for n, v in (("g", [3e38]), ("b", [0]), ("m", [0]), ("v", [1]))]
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["xs"], name="scale"),
        helper.make_node("Concat", ["xs", "xs"], ["x2"], name="cat", axis=1),
        helper.make_node("Conv", ["x2", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _nan_gate(w):
    model = overflowing_bn()
    check = NumericCheck(random_feeds(model), threshold=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fold_bn's float32 overflow
        return run_pipeline(model, ("canonicalize", "fold_bn"), instruments=[check])


def _random(model: onnx.ModelProto):
    return lambda w: random_feeds(model)


def _untrusted(name, call, error, match, what) -> Case:
    return Case(f"onnx:{name}", what, call, error, match)


CASES = [
    _untrusted(
        "nan-from-a-pass",
        _nan_gate,
        NumericMismatchError,
        "pass 'fold_bn' changed the outputs by inf > 0.001",
        "a BN whose folding overflows float32: the folded model outputs NaN",
    ),
    _untrusted(
        "constant-of-shape-bomb",
        _check_ort("constant_of_shape"),
        GraphError,
        "tensor 'big' (output of ConstantOfShape node 'amplifier') would hold shape "
        "[2147483648, 1], 8 GiB",
        "a 131-byte ONNX whose ConstantOfShape makes 8 GiB, run with --check-ort",
    ),
    _untrusted(
        "shape-product-bomb",
        _check_ort("shape_product"),
        GraphError,
        "output of ConstantOfShape node 'amplifier'",
        "8 GiB whose length is the product of two small inputs' dims (Shape * Shape)",
    ),
    _untrusted(
        "reduce-chain-bomb",
        _check_ort("reduce_chain"),
        GraphError,
        "[2147483648]",
        "8 GiB whose length comes through ReduceMax (no ONNX data propagation)",
    ),
    _untrusted("range-bomb-diff", _diff, GraphError, "graph A: tensor 'big'", "Range in a diff"),
    _untrusted(
        "expand-bomb-reimport",
        lambda w: qdqforge.reimport(_saved(w, bomb("expand", BIG))),
        GraphError,
        "reimport: tensor 'big' (output of Expand node",
        "Expand to 8 GiB given to reimport",
    ),
    _untrusted(
        "random-huge-dim",
        _random(_one_input(TensorProto.FLOAT, [1 << 40])),
        InputDataError,
        "random input 'x': shape [1099511627776] of float32 is 4.1e+03 GiB",
        "--random-inputs on a float[2^40] input",
    ),
    _untrusted(
        "random-negative-dim",
        _random(_negative_dim()),
        InputDataError,
        "random input 'x': shape [2, -3] has a negative dim",
        "--random-inputs on a negative dim",
    ),
    _untrusted(
        "random-string",
        _random(_one_input(TensorProto.STRING, [2])),
        InputDataError,
        "random input 'x': cannot draw random values of ONNX type STRING",
        "--random-inputs on a STRING input",
    ),
    _untrusted(
        "random-sequence",
        _random(_sequence_input()),
        InputDataError,
        "random input 'x': not a tensor (sequence_type)",
        "--random-inputs on a sequence input",
    ),
]
