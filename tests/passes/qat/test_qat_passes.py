"""QAT passes: stats, structure, attributes, onnx.checker; qat_strip is ORT-equal to the export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.config.qat import (
    RetrainConfig,
)
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io, numerics
from qdqforge.passes import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline
from tests.helpers.qat_layers import INSERT, layer


class ConvBnNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, groups=6)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(self.up(x).mean((2, 3)))


class Linear3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


CONFIG = RetrainConfig(
    batch_num=2,
    layers=(
        layer("conv1"),
        layer("conv2", "ulq_retrain"),
        layer("up"),
        layer("fc", channel_wise=False, clips=(2.0, -1.0)),
    ),
)


@pytest.fixture(scope="module")
def conv_net():
    torch.manual_seed(0)
    model, x = ConvBnNet().eval(), torch.randn(2, 3, 6, 6)
    return export(model, x, exporter="torchscript"), x


def attrs_of(node: onnx.NodeProto) -> dict:
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def test_insert_stats_structure_attributes(conv_net):
    proto, _ = conv_net
    result = run_pipeline(proto, INSERT, ctx=PassContext(config=CONFIG))
    stats = result.stats
    assert stats["qat_act_quant.act_quant_inserted"] == 4 and stats["qat_act_quant.fixed_min"] == 1
    assert (stats["qat_weight_quant.arq_retrain"], stats["qat_weight_quant.ulq_retrain"]) == (3, 1)
    assert stats["qat_search_n.search_n_inserted"] == 4 and stats["qat_search_n.after_bn"] == 1
    qat = io.to_proto(result.graph)
    onnx.checker.check_model(qat)
    ops = [n.op_type for n in qat.graph.node if n.domain != "qdqforge"]
    assert sorted(ops) == sorted(n.op_type for n in proto.graph.node)
    nodes = {(n.op_type, attrs_of(n)["layer"]): n for n in qat.graph.node if n.domain}
    assert len(nodes) == 12
    act = {name: attrs_of(nodes["UlqActQuant", name]) for name in ("conv1", "conv2", "fc")}
    assert [act[k]["fixed_min"] for k in act] == [0, 1, 0]  # conv2 reads the Relu
    assert (act["fc"]["clip_max"], act["fc"]["clip_min"]) == (2.0, -1.0)
    assert "clip_max" not in act["conv1"] and act["conv1"]["batch_num"] == 2
    up = attrs_of(nodes["ArqRetrainWeight", "up"])
    assert (up["channel_axis"], up["groups"], up["channels"]) == (1, 2, 4)
    assert attrs_of(nodes["ArqRetrainWeight", "fc"])["channel_wise"] == 0
    search = nodes["SearchN", "conv1"]
    producer = next(n for n in qat.graph.node if search.input[0] in n.output)
    assert producer.op_type == "BatchNormalization" and search.input[-1] == "conv1.bias"
    assert list(search.input[3:7]) == [producer.input[i] for i in (1, 4, 2, 3)]
    assert attrs_of(search)["bn_epsilon"] == pytest.approx(1e-5)
    assert attrs_of(nodes["SearchN", "fc"])["channel_axis"] == -1
    assert [o.name for o in qat.graph.output] == [o.name for o in proto.graph.output]


def test_strip_gives_back_the_float_graph(conv_net):
    proto, x = conv_net
    qat = run_pipeline(proto, INSERT, ctx=PassContext(config=CONFIG)).graph
    result = run_pipeline(qat, ("qat_strip",))
    assert (
        result.stats["qat_strip.SearchN"] == 4 and result.stats["qat_strip.UlqRetrainWeight"] == 1
    )
    stripped = io.to_proto(result.graph)
    onnx.checker.check_model(stripped)
    assert sorted(n.op_type for n in stripped.graph.node) == sorted(
        n.op_type for n in proto.graph.node
    )
    assert [o.name for o in stripped.graph.output] == [o.name for o in proto.graph.output]
    feeds = numerics.feeds_for(proto, [x.numpy()])
    np.testing.assert_array_equal(numerics.run(stripped, feeds)[0], numerics.run(proto, feeds)[0])


def test_linear_on_3d_input_quantizes_the_stored_weight():
    model, x = Linear3d().eval(), torch.randn(2, 4, 6)
    config = RetrainConfig(layers=(layer("fc", channel_wise=False),))
    qat = run_pipeline(
        export(model, x, exporter="torchscript"), INSERT, ctx=PassContext(config=config)
    ).graph
    weight = next(n for n in qat.gs.nodes if n.op == "ArqRetrainWeight")
    assert weight.inputs[0].name == "fc.weight" and weight.outputs[0].outputs[0].op == "Transpose"
    search = next(n for n in qat.gs.nodes if n.op == "SearchN")
    assert search.inputs[0].inputs[0].op == "MatMul" and search.attrs["channels"] == 3


def test_disabled_counted_and_missing_layer_named(conv_net):
    proto, _ = conv_net
    off = RetrainConfig(layers=(layer("conv1", enable=False),))
    result = run_pipeline(proto, INSERT, ctx=PassContext(config=off))
    assert result.stats["qat_act_quant.disabled"] == 1 and not result.modified
    with pytest.raises(PassError, match="'nope'"):
        run_pipeline(proto, INSERT, ctx=PassContext(config=RetrainConfig(layers=(layer("nope"),))))
