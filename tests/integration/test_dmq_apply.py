"""Recorded DMQ factors applied to the folded graph keep the model's outputs.

quantize_preprocess -> forwards -> record -> (export, fold_bn, apply_balance): onnxruntime's output
equals the original torch model's (docs/amct.md §4.4: balancing is an identity until quantized).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.errors import RecordError
from qdqforge.front.config import load_quant_config
from qdqforge.front.export.to_onnx import export
from qdqforge.front.record.dmq_factors import dmq_layers, recorded_balance_factors
from qdqforge.front.record.file import write_record
from qdqforge.graph import io, numerics
from qdqforge.passes.infra.pipeline import run_pipeline
from tests.helpers.dmq_flow import MODELS, build, write_config


@pytest.mark.parametrize("name", MODELS, ids=list(MODELS))
def test_recorded_factors_applied_keep_outputs(tmp_path, name):
    model, batches = build(name)
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "record.txt"
    calib = qdqforge.quantize_preprocess(str(cfg), str(record), model, batches[0])
    with torch.no_grad():
        for x in batches:
            calib(x)
    config = load_quant_config(cfg)
    factors = recorded_balance_factors(record, config)
    assert sorted(factors) == sorted(dmq_layers(config))

    proto = export(model, batches[0])
    options = {"apply_balance": {"factors": factors}}
    balanced = run_pipeline(proto, ("canonicalize", "fold_bn", "apply_balance"), options=options)
    balanced = balanced.graph
    assert sum(n.op == "Mul" and n.name.endswith(".mul") for n in balanced.gs.nodes) == len(factors)
    for x in batches:
        feeds = numerics.feeds_for(proto, [x.numpy()])
        got = numerics.run(io.to_proto(balanced), feeds)[0]
        np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_missing_factors_name_the_layers(tmp_path):
    model, batches = build("cnn")
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "record.txt"
    write_record(record, {})
    with pytest.raises(RecordError, match=r"'conv1'.*quantize_preprocess"):
        recorded_balance_factors(record, load_quant_config(cfg))
