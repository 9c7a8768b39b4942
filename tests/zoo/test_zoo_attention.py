"""QAT with the attention MatMuls on, on a transformer of the zoo at CI size (hf/BertModel).

Stage (c) of ``bench/zoo_stages.py`` with a ``.cfg`` switching the ``MatMul`` layers on (Q·Kᵀ
and attention·V of each layer) and 7-bit weights (``weight_reduce_range``, so no x86 kernel
without VNNI saturates and the runtime stage has nothing to warn about). Measured on the shared
2-core machine: 92 s alone, 188 s beside other runs, hence ``slow``; the fake-quant model's
output within 8.1e-8 (relative L2, ORT_DISABLE_ALL) of ``qat.eval()``, every integer of the 8
MatMul operands equal.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F

import qdqforge
from qdqforge.front.qat.retrain_model import quant_parameters
from qdqforge.front.record.file import read_record

if not all(importlib.util.find_spec(name) for name in ("timm", "transformers")):
    pytest.skip("the zoo extra is not installed", allow_module_level=True)

from bench.zoo import all_cases
from bench.zoo_numbers import leaves, ort_rel_l2
from bench.zoo_stages import build

MATMULS = [f"encoder.layer.{i}.attention.self.matmul_{k}" for i in range(2) for k in range(2)]


def _config(tmp_path, model, x):
    cfg, defination = tmp_path / "qat.json", tmp_path / "qat.cfg"
    defination.write_text('override_layer_types { layer_type: "MatMul" }\n')
    qdqforge.create_quant_retrain_config(str(cfg), model, x, config_defination=str(defination))
    tree = json.loads(cfg.read_text())
    tree["weight_reduce_range"] = True
    cfg.write_text(json.dumps(tree))
    return cfg


def _two_steps(net, batches) -> None:
    """The zoo's stage (c) recipe: clips in their own group, bounded loss, clipped gradients."""
    quant, weights = quant_parameters(net.train())
    opt = torch.optim.SGD([{"params": weights}, {"params": quant, "lr": 1e-4}], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for batch in batches:
        out = leaves(net(*batch))[0].float().flatten(1)
        target = torch.randint(0, out.shape[1], out.shape[:1], generator=generator)
        opt.zero_grad()
        F.cross_entropy(out, target).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()


@pytest.mark.slow
def test_bert_attention_matmuls_in_qat(tmp_path):
    case = next(c for c in all_cases() if c.name == "hf/BertModel")
    model, batches = build(case, "ci", 2)
    cfg, record = _config(tmp_path, model, batches[0]), tmp_path / "record.txt"
    net = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), batches[0])
    _two_steps(net, batches)
    paths = qdqforge.save_quant_retrain_model(
        str(cfg), net, str(record), str(tmp_path / "qat"), batches[0]
    )
    report = json.loads((tmp_path / "qat_verify.json").read_text())
    assert report["status"] == "passed", report["reason"]
    compared = {t["tensor"]: t for t in report["comparisons"]["torch_vs_fake_quant"]["tensors"]}
    for layer in MATMULS:
        assert read_record(record)[layer].scale_h is not None, layer
        for tensor in (f"{layer}.quant.out", f"{layer}.input_1.quant.out"):
            assert compared[tensor]["max_steps"] == 0, tensor
    with torch.no_grad():
        reference = leaves(net.eval()(*batches[0]))[0]
    assert ort_rel_l2(paths.fake_quant, batches[0], reference) < 1e-5
