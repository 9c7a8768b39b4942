"""act_observe: stats, structure, checker; the runtime observer feeds exactly batch_num forwards."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.config.ptq import ActivationQuantParams, LayerConfig, QuantConfig
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io
from qdqforge.passes import PassContext, get_pass
from qdqforge.passes.infra.pipeline import run_pipeline
from qdqforge.runtime import reimport
from qdqforge.runtime.calibration.hfmg import HfmgObserver
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from tests.helpers.layer_cases import Wrap

HFMG = ActivationQuantParams(8, "hfmg", None, None, None, None, num_of_bins=1024)
ALGOS = {"ifmr": ActivationQuantParams(), "hfmg": HFMG}


def config(act=None, enable=True, name="layer", batch_num=2) -> QuantConfig:
    layer = LayerConfig(name, enable, activation_quant_params=act or ActivationQuantParams())
    return QuantConfig(batch_num=batch_num, layers=(layer,))


def reference(algo: str, batches, symmetric: bool):
    if algo == "hfmg":
        ref = HfmgObserver(num_of_bins=1024, symmetric=symmetric, layer="layer")
    else:
        ref = IfmrObserver(symmetric=symmetric, expected_batches=2, layer="layer")
    for x in batches:
        ref.update(x)
    return ref.compute()


@pytest.mark.parametrize("algo", ALGOS, ids=list(ALGOS))
def test_observer_sees_batch_num_forwards(algo):
    torch.manual_seed(4)
    model, batches = Wrap(nn.Conv2d(3, 4, 3)).eval(), [torch.randn(2, 3, 6, 6) for _ in range(3)]
    graph = io.load(export(model, batches[0]))
    result = get_pass("act_observe")()(graph, PassContext(config=config(ALGOS[algo])))

    assert result.stats["observers_inserted"] == 1
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto)
    node = next(n for n in proto.graph.node if n.op_type == "ActObserver")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["algo"] == algo.encode() and attrs["batch_num"] == 2 and attrs["symmetric"] == 0
    module = reimport(proto)
    observer = next(m for m in module.modules() if isinstance(m, ActObserverOp))
    for i, x in enumerate(batches[:2]):  # observing: an identity
        torch.testing.assert_close(module(x), model(x), rtol=0, atol=0)
        assert (observer.params is None) == (i == 0)
    assert observer.batches == 2
    params = observer.params
    assert params == reference(algo, batches[:2], symmetric=False)
    # calibrated: the input is fake-quantized on (scale_d, offset_d), the layer runs on that
    x = batches[2]
    q = torch.clamp(torch.round(x / torch.tensor(params.scale)) + params.offset, -128, 127)
    want = model.layer((q - params.offset) * torch.tensor(params.scale))
    torch.testing.assert_close(module(x), want, rtol=0, atol=1e-6)
    assert not torch.equal(module(x), model(x))


def test_observer_follows_the_balance_mul():
    model, x = Wrap(nn.Conv2d(3, 4, 3)).eval(), torch.randn(1, 3, 6, 6)
    options = {"apply_balance": {"factors": {"layer": [2.0] * 3}}}
    passes = ("apply_balance", "act_observe")
    graph = run_pipeline(export(model, x), passes, ctx=PassContext(config()), options=options).graph
    observer = next(n for n in graph.gs.nodes if n.op == "ActObserver")
    assert observer.inputs[0].inputs[0].op == "Mul"
    assert observer.outputs[0].outputs[0].op == "Conv"


def test_disabled_counted_and_missing_layer_named():
    model, x = Wrap(nn.Conv2d(3, 4, 3)).eval(), torch.randn(1, 3, 6, 6)
    result = get_pass("act_observe")()(io.load(export(model, x)), PassContext(config(enable=False)))
    assert result.stats["disabled"] == 1 and not result.modified
    with pytest.raises(PassError, match="'nope'"):
        get_pass("act_observe")()(io.load(export(model, x)), PassContext(config(name="nope")))
