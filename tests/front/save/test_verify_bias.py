"""verify_bias on a Linear exported as MatMul + Add with a transposed weight (the transformer
test net): every int32 bias is found, its grid read through the Transpose, and a 5 % scale or a
two-step value is named."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import qdqforge
from qdqforge.front.save.verify_bias import MISPLACED, bias_sites, misplaced_bias
from tests.helpers.dmq_flow import build, write_config
from tests.helpers.ptq_flow import run_seed_flow


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify_bias")
    model, batches = build("transformer")
    cfg = write_config(tmp, model, batches[0], dmq=False)
    run_seed_flow(cfg, tmp / "r.txt", tmp / "m.onnx", model, batches, with_dmq=False)
    paths = qdqforge.save_model(str(tmp / "m.onnx"), str(tmp / "r.txt"), str(tmp / "net"))
    return onnx.load(str(paths.fake_quant)), onnx.load(str(paths.qdq))


def test_every_linear_bias_is_found_with_its_grid(saved):
    fake, qdq = saved
    sites = bias_sites(fake, qdq)
    int32_biases = [i for i in qdq.graph.initializer if i.name.endswith(".bias_int32")]
    assert len(sites) == len(int32_biases) >= 2
    assert all(s.grid is not None for s in sites)
    assert misplaced_bias(sites) is None


@pytest.mark.parametrize("what", ["scale", "value"])
def test_a_wrong_bias_is_named(saved, what):
    fake, qdq = saved
    broken = onnx.ModelProto()
    broken.CopyFrom(qdq)
    site = bias_sites(fake, qdq)[0]
    suffix = ".bias_dequant.scale" if what == "scale" else ".bias_int32"
    init = next(i for i in broken.graph.initializer if i.name == site.layer + suffix)
    value = numpy_helper.to_array(init)
    edited = value * np.float32(1.05) if what == "scale" else value + np.int32(2)
    init.CopyFrom(numpy_helper.from_array(edited.astype(value.dtype), init.name))
    found = misplaced_bias(bias_sites(fake, broken))
    assert found is not None and found.comparison == MISPLACED and found.tensor == site.tensor
