"""MatMuls between two activations: found by their config name, quantized on both operands.

``fake_quant`` and ``insert_qdq`` on a record entry ``attn.matmul_<k>`` put input 0 on
``scale_d``/``offset_d`` and input 1 on ``scale_h``/``offset_h``; the result is compared with
the same quantization computed in float64 by numpy (Q·Kᵀ then softmax·V of an exported
attention module; the Linear's MatMul is a weight layer and is not counted).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from qdqforge.errors import PassError
from qdqforge.front.export.to_onnx import export
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io, numerics
from qdqforge.graph.activation_matmul import activation_matmul_site, activation_matmuls
from qdqforge.passes.infra.pipeline import run_pipeline


class Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v


class Wrap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = Attn()

    def forward(self, x):
        return self.attn(x)


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model, x = Wrap().eval(), torch.randn(2, 5, 8)
    return model, x, export(model, x)


def _records() -> dict[str, LayerRecord]:
    return {
        "attn.matmul_0": LayerRecord(scale_d=0.021, offset_d=3, scale_h=0.017, offset_h=-2),
        "attn.matmul_1": LayerRecord(scale_d=1 / 255, offset_d=-128, scale_h=0.013, offset_h=0),
    }


def _fq(x: np.ndarray, scale: float, offset: int) -> np.ndarray:
    s = float(np.float32(scale))
    return (np.clip(np.round(x / s) + offset, -128, 127) - offset) * s


def _reference(model: Wrap, x: torch.Tensor, recs: dict[str, LayerRecord]) -> np.ndarray:
    with torch.no_grad():
        q, k, v = (t.double().numpy() for t in model.attn.qkv(x).chunk(3, dim=-1))
    a, b = recs["attn.matmul_0"], recs["attn.matmul_1"]
    scores = _fq(q, a.scale_d, a.offset_d) @ _fq(k.swapaxes(-2, -1), a.scale_h, a.offset_h)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return _fq(probs, b.scale_d, b.offset_d) @ _fq(v, b.scale_h, b.offset_h)


def test_sites_are_the_two_activation_matmuls_in_graph_order(exported):
    graph = io.load(exported[2])
    found = activation_matmuls(graph)
    assert len(found) == 2 and all(graph.module_of(n) == "attn" for n in found)
    first, second = (activation_matmul_site(graph, f"attn.matmul_{k}") for k in range(2))
    assert (first.node, second.node) == tuple(found)
    assert first.weight is None and second.weight is None
    assert activation_matmul_site(graph, "attn.matmul_2") is None
    assert activation_matmul_site(graph, "attn.qkv") is None


@pytest.mark.parametrize("pass_name", ["fake_quant", "insert_qdq"])
def test_both_operands_quantized_as_recorded(exported, pass_name):
    model, x, proto = exported
    recs = _records()
    options = {pass_name: {"records": recs}}
    result = run_pipeline(io.load(proto), (pass_name,), options=options)

    assert result.stats[f"{pass_name}.activations"] == 4
    out = io.to_proto(result.graph)
    onnx.checker.check_model(out, full_check=True)
    produced = {o for n in out.graph.node for o in n.output}
    for layer in recs:
        assert {f"{layer}.quant.out", f"{layer}.input_1.quant.out"} <= produced
    got = numerics.run(out, numerics.feeds_for(out, [x.numpy()]))[0]
    np.testing.assert_allclose(got, _reference(model, x, recs), rtol=1e-5, atol=1e-6)


def test_a_record_without_the_second_grid_is_refused(exported):
    recs = {"attn.matmul_0": LayerRecord(scale_d=0.02, offset_d=0)}
    options = {"fake_quant": {"records": recs}}
    with pytest.raises(PassError, match=r"layer 'attn\.matmul_0' has no scale_h/offset_h"):
        run_pipeline(io.load(exported[2]), ("fake_quant",), options=options)
