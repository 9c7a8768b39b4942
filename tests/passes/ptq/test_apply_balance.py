"""apply_balance: stats, structure (Mul before the layer), W*s vs numpy, ORT equality, checker."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io, numerics
from qdqforge.passes import get_pass
from tests.helpers.layer_cases import CASES, Wrap


def input_channels(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def numpy_scaled(layer: nn.Module, s: np.ndarray, kind: str) -> np.ndarray:
    """Independent W*s: scale each input channel's slice of the weight in a loop."""
    w = layer.weight.detach().numpy().astype(np.float64).copy()
    for j, factor in enumerate(s):
        if kind == "Linear":
            w[:, j] *= factor
        elif kind == "ConvT":
            w[j] *= factor
        else:
            cin_g = w.shape[1]
            cout_g = w.shape[0] // layer.groups
            g = j // cin_g
            w[g * cout_g : (g + 1) * cout_g, j % cin_g] *= factor
    return w


def balance(model: nn.Module, x: torch.Tensor, factors: dict):
    proto = export(model, x)
    return proto, get_pass("apply_balance")({"factors": factors})(io.load(proto))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_balance_keeps_outputs(case):
    make, shape, kind = CASES[case]
    torch.manual_seed(2)
    model, x = Wrap(make()).eval(), torch.randn(*shape)
    s = np.random.default_rng(0).uniform(0.2, 5.0, input_channels(model.layer))
    before, result = balance(model, x, {"layer": s})

    assert result.stats["layers_balanced"] == 1 and result.modified
    after = io.to_proto(result.graph)
    onnx.checker.check_model(after)
    mul = next(n for n in after.graph.node if n.name == "layer.mul")
    layer = next(n for n in after.graph.node if mul.output[0] in n.input)
    assert layer.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in after.graph.initializer}
    np.testing.assert_allclose(
        inits["layer.weight.balanced"], numpy_scaled(model.layer, s, kind), rtol=1e-6
    )
    np.testing.assert_allclose(inits["layer.tensor_balance_factor"].reshape(-1), 1 / s, rtol=1e-6)
    feeds = numerics.feeds_for(before, [x.numpy()])
    want, got = numerics.run(before, feeds)[0], numerics.run(after, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_wrong_factor_count_names_the_layer():
    model, x = Wrap(nn.Conv2d(3, 4, 3)).eval(), torch.randn(1, 3, 6, 6)
    with pytest.raises(PassError, match="'layer' needs 3"):
        balance(model, x, {"layer": [1.0, 2.0]})


def test_no_factors_leaves_graph_alone():
    model, x = Wrap(nn.Conv2d(3, 4, 3)).eval(), torch.randn(1, 3, 6, 6)
    _, result = balance(model, x, {})
    assert not result.modified and result.stats["layers_balanced"] == 0
