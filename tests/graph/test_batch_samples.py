"""The first samples of a batch along the model's symbolic batch axis (graph.batch_samples)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from qdqforge.graph.batch_samples import batch_inputs, first_samples


def _model_with_inputs(*dims) -> onnx.ModelProto:
    inputs = [
        onnx.helper.make_tensor_value_info(f"x{i}", onnx.TensorProto.FLOAT, [d, 3])
        for i, d in enumerate(dims)
    ]
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = onnx.helper.make_node("Identity", ["x0"], ["y"])
    return onnx.helper.make_model(onnx.helper.make_graph([node], "g", inputs, [out]))


def test_only_inputs_on_the_first_inputs_symbolic_axis_are_cut():
    model = _model_with_inputs("batch", "batch_1", "batch", 8)
    assert batch_inputs(model, 4) == [True, False, True, False]
    arrays = tuple(np.zeros((8, 3), np.float32) for _ in range(4))
    cut = first_samples(model, arrays, 2)
    assert [a.shape[0] for a in cut.arrays] == [2, 8, 2, 8]
    assert (cut.used, cut.given, cut.cut) == (2, 8, True)


@pytest.mark.parametrize(
    ("dims", "samples", "batch"),
    [(("batch",), None, 8), ((8,), 2, 8), (("batch",), 2, 2), (("batch",), 2, 1)],
)
def test_nothing_is_cut_without_a_batch_axis_or_beyond_it(dims, samples, batch):
    model = _model_with_inputs(*dims)
    arrays = (np.zeros((batch, 3), np.float32),)
    kept = first_samples(model, arrays, samples)
    assert kept.arrays[0].shape[0] == batch and not kept.cut


def test_torch_tensors_are_cut_like_the_arrays():
    model = _model_with_inputs("batch", "batch_1")
    tensors = (torch.zeros(8, 3), torch.ones(8, 3))
    cut = first_samples(model, tuple(t.numpy() for t in tensors), 2)
    assert [t.shape[0] for t in cut.apply(tensors)] == [2, 8]
