"""dmq_observe: stats, structure, weight maxima vs numpy, onnx.checker, identity in the runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.config.ptq import LayerConfig, QuantConfig
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io
from qdqforge.passes import PassContext, get_pass
from qdqforge.runtime import reimport
from tests.helpers.layer_cases import CASES, Wrap


def numpy_weight_max(layer: nn.Module, kind: str) -> np.ndarray:
    """Independent per-input-channel max |W| (module docstring of kernels.dmq)."""
    w = np.abs(layer.weight.detach().numpy().astype(np.float64))
    if kind == "Linear":
        return w.max(axis=0)
    if kind == "ConvT":
        return w.reshape(w.shape[0], -1).max(axis=1)
    groups, cout_g, cin_g = layer.groups, w.shape[0] // layer.groups, w.shape[1]
    return np.array(
        [
            w[(j // cin_g) * cout_g : (j // cin_g + 1) * cout_g, j % cin_g].max()
            for j in range(groups * cin_g)
        ]
    )


def dmq_config(*names: str, alpha: float = 0.5, enable: bool = True) -> QuantConfig:
    return QuantConfig(layers=tuple(LayerConfig(n, enable, alpha) for n in names))


def observe(model: nn.Module, shape, config: QuantConfig):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    graph = io.load(export(model, x))
    return get_pass("dmq_observe")()(graph, PassContext(config=config)), x


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_observer_in_front_of_layer(case):
    make, shape, kind = CASES[case]
    torch.manual_seed(1)
    model = Wrap(make()).eval()
    result, x = observe(model, shape, dmq_config("layer"))

    assert result.stats["observers_inserted"] == 1 and result.modified
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto)
    observer = next(n for n in proto.graph.node if n.op_type == "DmqObserver")
    assert observer.domain == "qdqforge"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in observer.attribute}
    assert attrs["layer"] == b"layer" and attrs["alpha"] == 0.5
    assert attrs["channel_axis"] == (-1 if kind == "Linear" else 1)
    assert attrs["groups"] == getattr(model.layer, "groups", 1)
    layer = next(n for n in proto.graph.node if observer.output[0] in n.input)
    assert layer.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")
    w_max = next(i for i in proto.graph.initializer if i.name == observer.input[1])
    expected = numpy_weight_max(model.layer, kind)
    np.testing.assert_allclose(onnx.numpy_helper.to_array(w_max), expected, rtol=1e-6)
    torch.testing.assert_close(reimport(proto)(x), model(x), rtol=0, atol=0)


def test_layers_without_dmq_or_disabled_are_counted():
    model = Wrap(nn.Conv2d(3, 4, 3)).eval()
    config = QuantConfig(layers=(LayerConfig("layer", True, None),))
    result, _ = observe(model, (1, 3, 6, 6), config)
    assert result.stats["no_dmq"] == 1 and not result.modified
    result, _ = observe(model, (1, 3, 6, 6), dmq_config("layer", enable=False))
    assert result.stats["disabled"] == 1 and not result.modified


def test_layer_missing_from_graph_is_named():
    model = Wrap(nn.Conv2d(3, 4, 3)).eval()
    with pytest.raises(PassError, match="'nope'"):
        observe(model, (1, 3, 6, 6), dmq_config("nope"))
