"""QAT converters: module paths and state_dict names, forward == the kernels composed by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qdqforge.front.config.qat import RetrainConfig
from qdqforge.front.export.to_onnx import export
from qdqforge.graph import io
from qdqforge.passes import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline
from qdqforge.runtime import reimport
from qdqforge.runtime.kernels.ulq import ulq_act_fake_quant
from qdqforge.runtime.kernels.ulq_weight import (
    arq_retrain_fake_quant,
    ulq_weight_fake_quant,
    ulq_weight_init,
)
from tests.helpers.qat_layers import INSERT, layer

CLIPS = (3.0, -2.0)


def qat_module(model: nn.Module, x: torch.Tensor, algo: str, channel_wise: bool = True):
    config = RetrainConfig(layers=(layer("net.layer", algo, channel_wise, clips=CLIPS),))
    graph = run_pipeline(
        export(Outer(model).eval(), x, exporter="torchscript"),
        INSERT,
        ctx=PassContext(config=config),
    )
    return reimport(io.to_proto(graph.graph))


class Outer(nn.Module):
    def __init__(self, layer_: nn.Module) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net.layer = layer_

    def forward(self, x):
        return self.net.layer(x)


CASES = {
    "conv_arq": (lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 6), "arq_retrain", True),
    "linear_3d_ulq": (lambda: nn.Linear(5, 3), (2, 4, 5), "ulq_retrain", False),
    "convtranspose_grouped_ulq": (
        lambda: nn.ConvTranspose2d(4, 6, 2, groups=2),
        (2, 4, 5, 5),
        "ulq_retrain",
        True,
    ),
}


def expected(module: nn.Module, x: torch.Tensor, algo: str, channel_wise: bool):
    axis, groups = (1, module.groups) if isinstance(module, nn.ConvTranspose2d) else (0, 1)
    x_q = ulq_act_fake_quant(x, torch.tensor(CLIPS[0]), torch.tensor(CLIPS[1]))
    if algo == "arq_retrain":
        w_q = arq_retrain_fake_quant(module.weight, 8, channel_wise, axis, groups)
    else:
        scale = ulq_weight_init(module.weight, 8, channel_wise, axis, groups)
        w_q = ulq_weight_fake_quant(module.weight, scale, 8, axis, groups)
    if isinstance(module, nn.Linear):
        return F.linear(x_q, w_q, module.bias)
    if isinstance(module, nn.ConvTranspose2d):
        return F.conv_transpose2d(x_q, w_q, module.bias, groups=groups)
    return F.conv2d(x_q, w_q, module.bias)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_qat_module_names_and_forward(case):
    make, shape, algo, channel_wise = CASES[case]
    torch.manual_seed(0)
    model, x = make(), torch.randn(*shape)
    qat = qat_module(model, x, algo, channel_wise).eval()
    names = {name for name, _ in qat.named_parameters()}
    quant = {"net.layer.act_quant.clip_max", "net.layer.act_quant.clip_min"}
    if algo == "ulq_retrain":
        quant.add("net.layer.weight_quant.scale_log_ratio")
    assert names == {"net.layer.weight", "net.layer.bias"} | quant
    assert "net.layer.search_n.error" in qat.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(qat(x), expected(model, x, algo, channel_wise))
    assert int(qat.net.layer.search_n.batches) == 1  # eval forward: search-N statistics
