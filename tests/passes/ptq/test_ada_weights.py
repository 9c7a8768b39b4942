"""ada_weights: stats, the same initializer with new values, onnxruntime = torch with them, checker.

Also arq_weights' side of it: an ada_quantize layer is ARQ-quantized like any other and its float
weight is kept in ``ctx.arq_weights.ada_float_weights``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.config.ptq import LayerConfig, QuantConfig, WeightQuantParams
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io, numerics
from qdqforge.passes import PassContext, get_pass
from tests.helpers.layer_cases import CASES, Wrap

ADA = WeightQuantParams(wts_algo="ada_quantize", num_iteration=10, reg_param=0.01,
                        beta_range=(20, 2), warm_start=0.2)  # fmt: skip


def arq_then_ada(model: nn.Module, shape, algo: str = "ada_quantize"):
    params = ADA if algo == "ada_quantize" else WeightQuantParams()
    channel_wise = not isinstance(model.layer, nn.Linear)
    params = WeightQuantParams(**{**params.__dict__, "channel_wise": channel_wise})
    ctx = PassContext(
        config=QuantConfig(layers=(LayerConfig("layer", weight_quant_params=params),))
    )
    x = torch.randn(*shape)
    graph = get_pass("arq_weights")()(io.load(export(model, x)), ctx).graph
    return graph, ctx, x


def initializer(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return next(onnx.numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == name)


@pytest.mark.parametrize("case", ["conv2d", "depthwise", "convtranspose", "linear_3d"])
def test_rounded_weight_replaces_arq_values(case):
    make, shape, _ = CASES[case]
    torch.manual_seed(5)
    model = Wrap(make()).eval()
    graph, ctx, x = arq_then_ada(model, shape)
    float_w = ctx.arq_weights.ada_float_weights["layer"]
    np.testing.assert_array_equal(float_w, model.layer.weight.detach().numpy())
    arq = initializer(io.to_proto(graph), "layer.weight.arq")
    new = arq.copy()
    new.flat[::3] += 0.01  # any values: the pass writes what AdaRound learnt
    result = get_pass("ada_weights")({"weights": {"layer": new}})(graph)

    assert result.modified and result.stats["layers_rounded"] == 1
    assert result.stats["values_changed"] == new[new != arq].size
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto)
    np.testing.assert_array_equal(initializer(proto, "layer.weight.arq"), new)
    with torch.no_grad():
        model.layer.weight.copy_(torch.from_numpy(new))
        want = model(x).numpy()
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_arq_layers_keep_no_float_weight():
    _, ctx, _ = arq_then_ada(Wrap(nn.Conv2d(3, 4, 3)).eval(), (1, 3, 6, 6), "arq_quantize")
    assert ctx.arq_weights.ada_float_weights == {} and "layer" in ctx.arq_weights.scale_w


def test_shape_mismatch_and_missing_layer():
    graph, _, _ = arq_then_ada(Wrap(nn.Conv2d(3, 4, 3)).eval(), (1, 3, 6, 6))
    ada = get_pass("ada_weights")
    missing = ada({"weights": {"other": [0.0]}})(graph)
    assert missing.stats["no_weight"] == 1 and not missing.modified
    bad = {"weights": {"layer": np.zeros((4, 3, 2, 2), np.float32)}}
    with pytest.raises(PassError, match=r"layer 'layer'.*\[4, 3, 3, 3\]"):
        ada(bad)(graph)
