"""The seed QAT flow end to end on the ResNet-, MobileNet- and transformer-style test models.

create_quant_retrain_config -> create_quant_retrain_model -> SGD steps -> save_quant_retrain_model.
Checks: the loss falls, every parameter (weights, BN affine, clips, ulq scales) gets a non-zero
gradient, the record holds every retrained layer, onnxruntime on the fake-quant model agrees
with ``qat.eval()`` within ``FAKE_QUANT_LSB`` of the int8 grid over the output range, and the
user's model is untouched.

Measured (ORT_DISABLE_ALL and default session alike, 2 batches): resnet <= 2.2e-5 LSB,
mobilenet <= 1.4e-5, transformer <= 2.4e-5 (float summation order: the fake-quant model is the
module's own float ops; the former bound, 4 LSB, dated from the Q/DQ fake-quant model, measured
0.2-1.0 LSB). Bound 1e-4 LSB (4x margin). One layer's ``s_d`` x1.05 in the saved file (conv1 or
fc, resnet) moves the output by 0.96-1.4 LSB: under the old bound, 10^4 times over this one.
"""

from __future__ import annotations

import json

import pytest
import torch

import qdqforge
from qdqforge.front.config.qat_load import load_retrain_config
from qdqforge.front.record.file import read_record
from tests.helpers.qat_flow import error_in_lsb, ort_outputs, train, write_config
from tests.helpers.state import assert_untouched, snapshot
from tests.helpers.torch_models import build

SHAPES = {"resnet": (2, 3, 8, 8), "mobilenet": (2, 3, 16, 16), "transformer": (2, 6, 12)}
FAKE_QUANT_LSB = 1e-4


def retrained_layers(cfg) -> list[str]:
    config = load_retrain_config(cfg)
    return sorted(x.name for x in config.layers if x.retrain_enable)


@pytest.mark.parametrize(
    "name",
    [
        "resnet",
        pytest.param("mobilenet", marks=pytest.mark.slow),
        pytest.param("transformer", marks=pytest.mark.slow),
    ],
)
def test_seed_flow(tmp_path, name):
    model, _ = build(name)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(SHAPES[name], generator=gen) for _ in range(2)]
    before = snapshot(model)
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "record.txt"

    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), batches[0])
    losses = train(qat, batches, steps=6)
    assert sum(losses[-2:]) < sum(losses[:2]), losses  # the same two batches, first vs last
    silent = [k for k, p in qat.named_parameters() if p.grad is None or not p.grad.any()]
    assert not silent
    assert sum(".act_quant.clip_" in k for k, _ in qat.named_parameters()) >= 2

    saved = qdqforge.save_quant_retrain_model(
        str(cfg), qat, str(record), str(tmp_path / "out" / "net"), batches[0]
    )
    records = read_record(record)
    assert sorted(records) == retrained_layers(cfg)
    verify = json.loads((tmp_path / "out" / "net_verify.json").read_text())
    compared = verify["comparisons"]["torch_vs_fake_quant"]
    assert verify["passed"] and not compared["not_compared"]
    assert {t["tensor"] for t in compared["tensors"]} == {f"{k}.quant.out" for k in records}
    for layer, rec in records.items():
        assert rec.scale_d > 0 and -128 <= rec.offset_d <= 127, layer
        assert len(rec.offset_w) == len(rec.scale_w) >= 1 and rec.shift_bit, layer
        assert all(1 <= n <= 16 for n in rec.shift_bit), layer
    qat.eval()
    for x in batches:
        with torch.no_grad():
            reference = qat(x).numpy()
        assert error_in_lsb(ort_outputs(saved.fake_quant, x), reference) <= FAKE_QUANT_LSB
    assert_untouched(model, before)
