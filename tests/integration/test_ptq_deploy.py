"""The deploy model: int8 weights, int32 bias, integer kernels in onnxruntime, == the QDQ model.

Seed flow on the ResNet, MobileNet, transformer and hand-written attention test models (and the
small CNN with depthwise, grouped and transposed convs). Budget: on every quantized activation,
QDQ and deploy integers differ by at most 1 step on at most 0.1% of the values, free-running (the
two hold the same int8 weights and int32 bias; only float summation order differs), and the
outputs agree to 1e-3 of the output range (one flip in a deep net moves the output a little).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from qdqforge.front.record.file import read_record
from qdqforge.graph import numerics
from qdqforge.graph.quant_compare import grid_mismatch
from tests.helpers.deploy_flow import INTEGER_OPS, model_and_batches, optimized_ops, seed_flow
from tests.helpers.torch_models import MODEL_NAMES


@pytest.mark.parametrize("name", ("cnn", *MODEL_NAMES))
def test_deploy_agrees_with_the_qdq_model(tmp_path, name):
    model, batches = model_and_batches(name)
    paths = seed_flow(tmp_path, model, batches)
    qdq, deploy = onnx.load(str(paths.qdq)), onnx.load(str(paths.deploy))
    onnx.checker.check_model(deploy)

    layers = [k for k, r in read_record(tmp_path / "r.txt").items() if r.scale_w]
    for layer in layers:  # the layer's weight is int8 only; no float copy is left behind
        inits = [i for i in deploy.graph.initializer if i.name.startswith(f"{layer}.")]
        kinds = {i.data_type for i in inits if "weight" in i.name and "scale" not in i.name}
        assert kinds == {onnx.TensorProto.INT8}, layer
    assert optimized_ops(tmp_path, paths.deploy) & INTEGER_OPS
    for (x,) in batches:
        feeds = numerics.feeds_for(qdq, [x.numpy()])
        flips = grid_mismatch(qdq, deploy, feeds)
        assert flips and max(f.max_steps for f in flips) <= 1
        assert sum(f.differ for f in flips) <= 1e-3 * sum(f.total for f in flips)
        want, got = numerics.run(qdq, feeds)[0], numerics.run(deploy, feeds)[0]
        assert np.abs(want - got).max() <= 1e-3 * np.abs(want).max()
