"""Activations and softmax against onnxruntime, across the opsets where they changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers.ortcheck import check_op, rand

SIMPLE = [
    ("Relu", {}, 14),
    ("Sigmoid", {}, 13),
    ("Tanh", {}, 13),
    ("HardSwish", {}, 14),
    ("LeakyRelu", {"alpha": 0.2}, 16),
    ("LeakyRelu", {}, 6),
    ("Elu", {"alpha": 0.7}, 6),
    ("Selu", {}, 6),
    ("Softplus", {}, 1),
    ("Softsign", {}, 1),
    ("HardSigmoid", {}, 6),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 6),
    ("Erf", {}, 13),
    ("Mish", {}, 18),
    ("Celu", {"alpha": 1.5}, 12),
]


@pytest.mark.parametrize(
    ("op", "attrs", "since"), SIMPLE, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(SIMPLE)]
)
def test_activation_matches_ort(op, attrs, since):
    check_op(op, [("x", rand(2, 3, 4, low=-4, high=4), False)], attrs, opset=max(since, 17))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("opset", [20, 21])
def test_gelu_matches_ort(approximate, opset):
    check_op("Gelu", [("x", rand(3, 5), False)], {"approximate": approximate}, opset=opset)


def test_prelu_matches_ort():
    check_op("PRelu", [("x", rand(2, 3, 4, 4), False), ("slope", rand(3, 1, 1), True)])


CLIP = [
    ("relu6", 0.0, 6.0),
    ("min_only", -1.0, None),
    ("max_only", None, 1.0),
    ("none", None, None),
]


@pytest.mark.parametrize(("low", "high"), [c[1:] for c in CLIP], ids=[c[0] for c in CLIP])
def test_clip_inputs_matches_ort(low, high):
    inputs = [("x", rand(2, 8, low=-8, high=8), False)]
    inputs.append(
        ("min", np.array(low, np.float32), True) if low is not None else ("", None, False)
    )
    if high is not None:
        inputs.append(("max", np.array(high, np.float32), True))
    check_op("Clip", inputs)


def test_clip_relu6_uses_hardtanh():
    inputs = [("x", rand(4), False), ("lo", np.array(0, np.float32), True)]
    module = check_op("Clip", [*inputs, ("hi", np.array(6, np.float32), True)])
    assert [n.target for n in module.graph.nodes if n.op == "call_function"] == [F.hardtanh]


def test_clip_opset6_attributes():
    check_op(
        "Clip", [("x", rand(2, 8, low=-8, high=8), False)], {"min": -1.0, "max": 2.0}, opset=10
    )


def test_clip_int_tensor():
    inputs = [("x", rand(6, dtype=np.int64, low=-9, high=9), False)]
    inputs += [("lo", np.array(-2, np.int64), True), ("hi", np.array(3, np.int64), True)]
    check_op("Clip", inputs)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(
    ("axis", "opset"),
    [(-1, 13), (1, 13), (0, 17), (1, 11), (-1, 11)],
    ids=["last13", "mid13", "first17", "mid11_flatten", "last11"],
)
def test_softmax_matches_ort(op, axis, opset):
    check_op(op, [("x", rand(2, 3, 4), False)], {"axis": axis}, opset=opset)


@pytest.mark.parametrize(
    ("opset", "with_ratio"),
    [(7, False), (12, True), (13, True)],
    ids=["attr", "input12", "input13"],
)
def test_dropout_is_identity_in_eval_and_a_module(opset, with_ratio):
    inputs = [("x", rand(4, 5), False)]
    attrs = {}
    if with_ratio:
        inputs += [("ratio", np.array(0.3, np.float32), True), ("mode", np.array(False), True)]
    else:
        attrs = {"ratio": 0.3}
    module = check_op("Dropout", inputs, attrs, opset=max(opset, 10))
    drops = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drops] == [pytest.approx(0.3)]


@pytest.mark.parametrize("as_input", [False, True], ids=["attr", "input"])
def test_float32_attributes_read_as_torch_values(as_input):
    inputs = [("x", rand(2, 3), False)]
    if as_input:
        inputs.append(("ratio", np.array(0.1, np.float32), True))
    module = check_op(
        "Dropout", inputs, {} if as_input else {"ratio": 0.1}, opset=12 if as_input else 10
    )
    assert [m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)] == [0.1]
