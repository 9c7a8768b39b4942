"""Nodes that read no graph input (a weight's Transpose, a QAT weight's fake quantization) run
just before their first consumer (``runtime.plan.weights_just_in_time``): same values, one
layer's quantized weight alive at a time in a forward without gradients."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import qdqforge
from qdqforge.runtime.modules.qat_weight import ArqRetrainWeightOp
from qdqforge.runtime.plan import toposort
from tests.helpers.ortcheck import assert_matches_ort


def _two_layers(random: bool = False):
    """Transposes of both weights first in the file (as Kahn's sort leaves them), a weight
    chain (Mul) for the second layer, and optionally a RandomNormal, which keeps its place."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.float32(0.5), "half"),
    ]
    nodes = [
        helper.make_node("Transpose", ["w1"], ["w1t"], name="t1"),
        helper.make_node("Transpose", ["w2"], ["w2t"], name="t2"),
        helper.make_node("Mul", ["w2t", "half"], ["w2h"], name="scale2"),
        *([helper.make_node("RandomNormal", [], ["noise"], name="noise", shape=[1])] * random),
        helper.make_node("MatMul", ["x", "w1t"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2h"], ["y"], name="mm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_weight_nodes_move_to_their_first_consumer():
    order = [n.name for n in toposort(_two_layers())]
    assert order == ["t1", "mm1", "relu", "t2", "scale2", "mm2"]


def test_random_nodes_keep_their_place():
    order = [n.name for n in toposort(_two_layers(random=True))]
    assert order == ["noise", "t1", "mm1", "relu", "t2", "scale2", "mm2"]


def test_values_are_unchanged():
    model = _two_layers()
    assert_matches_ort(model, {"x": np.ones((3, 4), np.float32)})


def test_qat_forward_without_gradients_holds_one_quantized_weight(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 4)).eval()  # fmt: skip
    x = torch.randn(4, 16)
    cfg = tmp_path / "qat.json"
    qdqforge.create_quant_retrain_config(str(cfg), net, x)
    qat = qdqforge.create_quant_retrain_model(str(cfg), net, str(tmp_path / "r.txt"), x)
    made: list[weakref.ref] = []
    alive_at_each_call: list[int] = []

    def count(module, args, output):
        gc.collect()
        alive_at_each_call.append(sum(ref() is not None for ref in made))
        made.append(weakref.ref(output[0]))

    ops = [m for m in qat.modules() if isinstance(m, ArqRetrainWeightOp)]
    assert len(ops) == 3
    for op in ops:
        op.register_forward_hook(count)
    with torch.no_grad():
        qat.train()(x)
    assert alive_at_each_call == [0, 0, 0]  # the layer before has used and dropped its own
