"""arq_weights: stats, weights on the ARQ grid with numpy's scales, checker, scale_w in state."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.front.config.ptq import LayerConfig, QuantConfig, WeightQuantParams
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io
from qdqforge.passes import PassContext, get_pass
from tests.helpers.layer_cases import CASES, Wrap


def channel_major(layer: nn.Module, w: np.ndarray, kind: str) -> np.ndarray:
    """Independent (Cout, K) view: rows are output channels."""
    if kind != "ConvT":
        return w.reshape(w.shape[0], -1)
    g, cin, cout_g = layer.groups, w.shape[0], w.shape[1]
    rows = [
        w[gi * (cin // g) : (gi + 1) * (cin // g), j].reshape(-1)
        for gi in range(g)
        for j in range(cout_g)
    ]
    return np.stack(rows)


def numpy_scales(m: np.ndarray) -> np.ndarray:
    hi, lo = m.max(axis=1), m.min(axis=1)
    return np.where(-lo > hi, -lo / 128.0, np.maximum(hi, -lo) / 127.0)


def quantize(model, shape, channel_wise=True, enable=True):
    params = WeightQuantParams(channel_wise=channel_wise)
    config = QuantConfig(layers=(LayerConfig("layer", enable, weight_quant_params=params),))
    ctx = PassContext(config=config)
    graph = io.load(export(model, torch.randn(*shape)))
    return get_pass("arq_weights")()(graph, ctx), ctx


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_weights_on_numpy_grid(case):
    make, shape, kind = CASES[case]
    torch.manual_seed(3)
    model = Wrap(make()).eval()
    result, ctx = quantize(model, shape)

    assert result.stats["weights_quantized"] == 1 and result.modified
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto)
    w_hat = next(
        onnx.numpy_helper.to_array(i)
        for i in proto.graph.initializer
        if i.name == "layer.weight.arq"
    )
    w = model.layer.weight.detach().numpy().astype(np.float64)
    scales = numpy_scales(channel_major(model.layer, w, kind))
    np.testing.assert_allclose(ctx.arq_weights.scale_w["layer"], scales, rtol=1e-6)
    q = channel_major(model.layer, w_hat.astype(np.float64), kind) / scales[:, None]
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    assert q.min() >= -128.5 and q.max() <= 127.5
    np.testing.assert_allclose(w_hat, w, atol=scales.max() / 2 + 1e-7)


def test_per_tensor_scale():
    model = Wrap(nn.Conv2d(3, 4, 3)).eval()
    _, ctx = quantize(model, (1, 3, 6, 6), channel_wise=False)
    w = model.layer.weight.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(
        ctx.arq_weights.scale_w["layer"], numpy_scales(w.reshape(1, -1)), rtol=1e-6
    )


def test_disabled_layer_is_counted():
    result, ctx = quantize(Wrap(nn.Conv2d(3, 4, 3)).eval(), (1, 3, 6, 6), enable=False)
    assert result.stats["disabled"] == 1 and not result.modified and ctx.arq_weights.scale_w == {}
