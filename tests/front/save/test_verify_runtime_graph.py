"""The graph onnxruntime writes for a saved model is the one its default session runs.

The save-time check's runtime stage runs that graph (``numerics.optimized_graph``) with
optimizations off, forced and free, and takes the user's end-to-end outputs from the free run
instead of building one more default session. That is sound only if the two compute the same
thing: here every saved model (fake-quant, QDQ with its fused integer kernels, deploy) of a CNN
and a transformer gives bit-identical outputs both ways (a MobileNet too, when this was written).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.graph import numerics
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.torch_models import build


@pytest.fixture(scope="module", params=["resnet", "transformer"])
def saved(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    model, (x,) = build(request.param)
    model.eval()
    cfg = tmp / "c.json"
    qdqforge.create_quant_config(str(cfg), model, (x,))
    run_seed_flow(cfg, tmp / "r.txt", tmp / "m.onnx", model, [x], with_dmq=False)
    paths = qdqforge.save_model(str(tmp / "m.onnx"), str(tmp / "r.txt"), str(tmp / "net"))
    return paths, x


@pytest.mark.parametrize("kind", ["fake_quant", "qdq", "deploy"])
def test_the_written_graph_computes_what_the_default_session_does(saved, kind):
    paths, x = saved
    model = onnx.load(getattr(paths, kind))
    feeds = numerics.feeds_for(model, [torch.randn_like(x).numpy() * 3])
    default = numerics.default_session(model).run(None, feeds)
    written = numerics.optimized_graph(model)
    rerun = numerics.session(written).run(None, feeds)
    assert len(default) == len(rerun)
    for got, want in zip(rerun, default):
        np.testing.assert_array_equal(got, want)
    if kind == "qdq":  # the integer kernels are in the written graph, not decomposed again
        fused = {n.op_type for n in written.graph.node} & {"QLinearConv", "QGemm", "QLinearMatMul"}
        assert fused or "MatMulIntegerToFloat" in {n.op_type for n in written.graph.node}
