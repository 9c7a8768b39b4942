"""The save-time check catches small faults deep in the network, in each saved model.

PTQ on the ResNet-50-shaped test net, saved and verified; then one saved model is tampered with at
a deep layer (``layers.3.conv2``, the last stage) and verified again:

* a deploy activation scale x1.05 or its zero point +1: ``qdq_vs_deploy`` names that tensor;
* the fake-quant model's activation scale x1.05: ``torch_vs_fake_quant`` names it;
* the QDQ model's zero point +1: ``fake_quant_vs_qdq`` names it (a shift of every integer, far
  beyond the one-step flips its int32 bias explains);
* the deploy model's requantization scale ``s_d * s_w`` of that layer x1.05:
  ``qdq_vs_deploy`` names the next layer's input, ``layers.3.conv3.quant.out``.

Each fault is a few percent of one tensor's value: free-running it would hide among the flips
that float round-off multiplies with depth; forced it stands out at its own layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import numpy_helper

import qdqforge
from qdqforge.errors import VerificationError
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify import verify_saved_models
from qdqforge.front.save.write_models import calibration_reference
from qdqforge.graph import io
from tests.helpers.model_faults import scaled, tamper
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.torch_models import build

DEEP = "layers.3.conv2"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    model, (x,) = build("bottleneck_resnet")
    model.eval()
    cfg = tmp / "c.json"
    qdqforge.create_quant_config(str(cfg), model, (x,))
    run_seed_flow(cfg, tmp / "r.txt", tmp / "m.onnx", model, [x], with_dmq=False)
    paths = qdqforge.save_model(str(tmp / "m.onnx"), str(tmp / "r.txt"), str(tmp / "net"))
    records = {k: r for k, r in read_record(tmp / "r.txt").items()}
    assert DEEP in records
    return tmp, paths, x, records


def shifted(name: str, delta: int):
    def edit(inits):
        value = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array((value + delta).astype(value.dtype), name))

    return edit


FAULTS = {
    "deploy_scale": ("deploy", scaled(f"{DEEP}.quant.scale", 1.05), "qdq_vs_deploy", DEEP),
    "deploy_offset": ("deploy", shifted(f"{DEEP}.quant.offset", 1), "qdq_vs_deploy", DEEP),
    "fake_scale": ("fake_quant", scaled(f"{DEEP}.quant.scale", 1.05), "torch_vs_fake_quant", DEEP),
    "qdq_offset": ("qdq", shifted(f"{DEEP}.quant.offset", 1), "fake_quant_vs_qdq", DEEP),
    "deploy_requant": (
        "deploy",
        scaled(f"{DEEP}.dequant_scale", 1.05),
        "qdq_vs_deploy",
        "layers.3.conv3",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_small_deep_fault_is_named(saved, tmp_path, fault):
    tmp, paths, x, records = saved
    kind, edit, comparison, layer = FAULTS[fault]
    copies = {}
    for key, path in paths._asdict().items():
        copies[key] = tmp_path / path.name
        copies[key].write_bytes(path.read_bytes())
    tamper(copies[kind], edit)
    reference = calibration_reference(io.load(tmp / "m.onnx"), records)
    with pytest.raises(VerificationError) as caught:
        verify_saved_models(
            type(paths)(**copies), (x,), str(tmp_path / "check"), torch_module=reference
        )
    first, second = comparison.split("_vs_")
    assert f"{first} and {second} disagree" in str(caught.value)
    assert f"'{layer}.quant.out'" in str(caught.value)


def test_the_untampered_models_pass(saved, tmp_path):
    tmp, paths, x, records = saved
    reference = calibration_reference(io.load(tmp / "m.onnx"), records)
    verdict = verify_saved_models(paths, (x,), str(tmp_path / "check"), torch_module=reference)
    assert verdict.violation is None
    assert np.isfinite([c.differ for c in verdict.comparisons]).all()
    assert torch.is_grad_enabled()


BIAS_FAULTS = {
    "value": (shifted(f"{DEEP}.bias_int32", 3), "more than half a step"),
    "scale": (scaled(f"{DEEP}.bias_dequant.scale", 1.05), r"is not s_d \* s_w of the layer"),
}


@pytest.mark.parametrize("fault", list(BIAS_FAULTS))
def test_a_wrong_int32_bias_is_named(saved, tmp_path, fault):
    """Three int32 steps or a 5 % scale move a deep layer's output far less than one activation
    step: only the bias check on its own (verify_bias.misplaced_bias) can see them."""
    tmp, paths, x, records = saved
    edit, reason = BIAS_FAULTS[fault]
    copies = {k: tmp_path / p.name for k, p in paths._asdict().items()}
    for key, path in paths._asdict().items():
        copies[key].write_bytes(path.read_bytes())
    tamper(copies["qdq"], edit)
    reference = calibration_reference(io.load(tmp / "m.onnx"), records)
    with pytest.raises(VerificationError, match=reason) as caught:
        verify_saved_models(
            type(paths)(**copies), (x,), str(tmp_path / "check"), torch_module=reference
        )
    assert f"int32 bias '{DEEP}.bias_dequant.out' is wrong" in str(caught.value)
