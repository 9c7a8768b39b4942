"""integer_layers: stats, op sequence, checker, and ORT == an independent float64 torch reference.

The reference quantizes by hand: ``q_x = clip(rint(x / s_d) + o)``, ``W_q = rint(W / s_w)`` per
output channel, ``B_q = rint(B / (s_d * s_w))``, then runs the torch layer in float64 on
``(q_x - o) * s_d`` with weight ``W_q * s_w`` and bias ``B_q * s_d * s_w``. The integer model
must match it to float32 round-off (the int32 accumulation is exact).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from qdqforge.errors import QuantizationError
from qdqforge.front.export.to_onnx import export
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io, numerics
from qdqforge.passes.infra.pipeline import run_pipeline
from tests.helpers.layer_cases import CASES, Wrap

INTEGER_CASES = {k: v for k, v in CASES.items() if v[2] != "ConvT"}
OFFSET = 5


def record_for(layer, x: torch.Tensor, channel_wise: bool) -> LayerRecord:
    w = layer.weight.detach().numpy().reshape(layer.weight.shape[0], -1)
    scale_w = np.abs(w).max(axis=1) / 127 if channel_wise else [np.abs(w).max() / 127]
    scale_d = float(np.abs(x.numpy()).max() / 120)
    return LayerRecord(scale_d=scale_d, offset_d=OFFSET, scale_w=tuple(float(s) for s in scale_w))


def reference(layer, x: torch.Tensor, rec: LayerRecord) -> np.ndarray:
    ref = copy.deepcopy(layer).double()
    s_d, s_w = np.float32(rec.scale_d), np.asarray(rec.scale_w, np.float32)
    s_w = torch.tensor(s_w, dtype=torch.float64).reshape([-1] + [1] * (layer.weight.dim() - 1))
    q_x = torch.clamp(torch.round(x.double() / float(s_d)) + OFFSET, -128, 127)
    with torch.no_grad():
        ref.weight.copy_(torch.clamp(torch.round(ref.weight / s_w), -128, 127) * s_w)
        deq = (float(s_d) * s_w).reshape(-1)
        ref.bias.copy_(torch.round(ref.bias / deq) * deq)
        return ref((q_x - OFFSET) * float(s_d)).numpy()


@pytest.mark.parametrize("channel_wise", (True, False), ids=("per_channel", "per_tensor"))
@pytest.mark.parametrize("case", INTEGER_CASES, ids=list(INTEGER_CASES))
def test_integer_layer_matches_reference(case, channel_wise):
    make, shape, kind = INTEGER_CASES[case]
    torch.manual_seed(4)
    model, x = Wrap(make()).eval(), torch.randn(*shape)
    rec = record_for(model.layer, x, channel_wise)
    options = {"integer_layers": {"records": {"layer": rec}}}
    result = run_pipeline(io.load(export(model, x)), ("integer_layers",), options=options)

    assert result.stats["integer_layers.integer_layers"] == 1
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    integer_op = "ConvInteger" if kind == "Conv" else "MatMulInteger"
    assert ops[ops.index("QuantizeLinear") :][:5] == [
        "QuantizeLinear",
        integer_op,
        "Add",
        "Cast",
        "Mul",
    ]
    assert not {"Conv", "Gemm", "MatMul", "Transpose"} & set(ops)
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]
    np.testing.assert_allclose(got, reference(model.layer, x, rec), rtol=1e-5, atol=1e-6)


def test_bias_beyond_int32_is_a_quantization_error():
    model, x = Wrap(torch.nn.Linear(5, 3)).eval(), torch.randn(4, 5)
    rec = LayerRecord(scale_d=1e-4, offset_d=0, scale_w=(1e-9, 1e-9, 1e-9))
    options = {"integer_layers": {"records": {"layer": rec}}}
    with pytest.raises(QuantizationError, match=r"layer 'layer'.*int32.*skip_layers"):
        run_pipeline(io.load(export(model, x)), ("integer_layers",), options=options)


def test_conv_transpose_has_no_integer_form():
    model, x = Wrap(torch.nn.ConvTranspose2d(4, 6, 2)).eval(), torch.randn(2, 4, 5, 5)
    rec = LayerRecord(scale_d=0.1, offset_d=0, scale_w=(0.01,) * 6)
    options = {"integer_layers": {"records": {"layer": rec}}}
    with pytest.raises(Exception, match="no integer form"):
        run_pipeline(io.load(export(model, x)), ("integer_layers",), options=options)


@pytest.mark.parametrize("pipeline", (("integer_layers",), ("insert_qdq",)), ids=("deploy", "fake"))
def test_int4_weights_are_clamped_to_the_4_bit_grid(pipeline):
    torch.manual_seed(5)
    model, x = Wrap(torch.nn.Linear(6, 3)).eval(), torch.randn(4, 6)
    w_max = model.layer.weight.detach().abs().amax(1).numpy()
    scale_w = tuple(float(s) for s in w_max / 20)  # |W / s_w| reaches 20: beyond 7
    rec = LayerRecord(scale_d=0.05, offset_d=0, scale_w=scale_w, dst_type="INT4")
    options = {pipeline[0]: {"records": {"layer": rec}}}
    proto = io.to_proto(run_pipeline(io.load(export(model, x)), pipeline, options=options).graph)
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]

    s_w = torch.tensor(scale_w).reshape(-1, 1)
    w_q = torch.clamp(torch.round(model.layer.weight.detach() / s_w), -8, 7) * s_w
    x_q = torch.clamp(torch.round(x / 0.05), -128, 127) * 0.05
    deq = (torch.tensor(0.05, dtype=torch.float32) * s_w.reshape(-1)).double()
    bias = torch.round(model.layer.bias.detach().double() / deq) * deq
    want = (x_q.double() @ w_q.double().T + bias).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
