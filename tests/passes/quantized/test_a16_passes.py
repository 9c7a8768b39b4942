"""Passes for 16-bit activations: opset_upgrade, insert_qdq on an int16 grid, no integer form.

opset_upgrade: stats, the same ops at opset 21 (IR >= 10; from 17 the converter adds a Constant
and reorders), the checker, onnxruntime outputs bit-identical, node metadata (module names) kept;
a no-op at 21. insert_qdq with a record
whose ``act_type`` is INT16: refused below opset 21, else an int16 Q/DQ pair whose onnxruntime
output equals a float64 reference (``q = clip(rint(x / s) + o, -32768, 32767)``, int8 weights,
float bias). integer_layers has no form for such a layer.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from qdqforge.errors import PassError
from qdqforge.front.export.to_onnx import export
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io, numerics
from qdqforge.graph.layers import layer_site
from qdqforge.passes.infra.pipeline import run_pipeline
from qdqforge.passes.quantized.integer_layers import integer_capable
from tests.helpers.layer_cases import Wrap
from tests.helpers.torch_models import build as build_test_model


@pytest.mark.parametrize("opset", (17, 20), ids=("torchscript17", "dynamo20"))
def test_opset_upgrade_keeps_ops_metadata_and_outputs(opset):
    model, (x,) = build_test_model("transformer")
    graph = io.load(export(model.eval(), x, opset=opset))
    before = io.to_proto(graph)
    modules = {n.name: graph.module_of(n) for n in graph.gs.nodes}
    result = run_pipeline(graph, ("opset_upgrade",))

    assert result.stats == {"opset_upgrade.opset_from": opset, "opset_upgrade.opset_to": 21}
    after = io.to_proto(result.graph)
    onnx.checker.check_model(after, full_check=True)
    assert {o.domain: o.version for o in after.opset_import}[""] == 21 and after.ir_version >= 10
    ops = sorted(n.op_type for n in after.graph.node if n.op_type != "Constant")
    assert ops == sorted(n.op_type for n in before.graph.node if n.op_type != "Constant")
    kept = {n.name: result.graph.module_of(n) for n in result.graph.gs.nodes if n.name in modules}
    assert kept == modules  # every node survives, with its module name
    feeds = numerics.feeds_for(before, [x.numpy()])
    np.testing.assert_array_equal(numerics.run(after, feeds)[0], numerics.run(before, feeds)[0])
    again = run_pipeline(result.graph, ("opset_upgrade",))
    assert again.stats == {"opset_upgrade.already": 1} and not again.modified


SCALE_D, OFFSET = 2e-4, 1234


def int16_record(layer: torch.nn.Linear) -> LayerRecord:
    scale_w = layer.weight.detach().abs().amax(1).numpy() / 127
    return LayerRecord(
        scale_d=SCALE_D, offset_d=OFFSET, scale_w=tuple(map(float, scale_w)), act_type="INT16"
    )


def reference(layer: torch.nn.Linear, x: torch.Tensor, rec: LayerRecord) -> np.ndarray:
    s_w = torch.tensor(rec.scale_w, dtype=torch.float64).reshape(-1, 1)
    w_q = torch.clamp(torch.round(layer.weight.detach().double() / s_w), -128, 127) * s_w
    q_x = torch.clamp(torch.round(x.double() / SCALE_D) + OFFSET, -32768, 32767)
    x_q = (q_x - OFFSET) * SCALE_D
    return (x_q @ w_q.T + layer.bias.detach().double()).numpy()


def test_insert_qdq_int16_needs_opset_21_then_matches_the_reference():
    torch.manual_seed(3)
    model, x = Wrap(torch.nn.Linear(6, 4)).eval(), torch.randn(5, 6) * 3
    x[0, 0] = 40.0  # beyond the grid's top (1234 + 40 / 2e-4 > 32767): the clamp is compared
    rec = int16_record(model.layer)
    options = {"insert_qdq": {"records": {"layer": rec}}}
    graph = io.load(export(model, x))
    with pytest.raises(PassError, match=r"needs opset 21.*run opset_upgrade first"):
        run_pipeline(graph, ("insert_qdq",), options=options)

    result = run_pipeline(graph, ("opset_upgrade", "insert_qdq"), options=options)
    proto = io.to_proto(result.graph)
    onnx.checker.check_model(proto, full_check=True)
    zero_points = {i.name: i.data_type for i in proto.graph.initializer}
    assert zero_points["layer.quant.offset"] == onnx.TensorProto.INT16
    assert not any("bias_int32" in name for name in zero_points)  # the bias stays float
    assert [n.op_type for n in proto.graph.node].count("DequantizeLinear") == 2  # x and W
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]
    np.testing.assert_allclose(got, reference(model.layer, x, rec), rtol=1e-5, atol=1e-5)


def test_integer_layers_has_no_form_for_int16_activations():
    model, x = Wrap(torch.nn.Linear(6, 4)).eval(), torch.randn(5, 6)
    graph = io.load(export(model, x))
    rec = int16_record(model.layer)
    site = layer_site(graph, "layer")
    assert integer_capable(graph, site, LayerRecord(**{**rec.__dict__, "act_type": None}))
    assert not integer_capable(graph, site, rec)
