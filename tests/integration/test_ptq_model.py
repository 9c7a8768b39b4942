"""quantize_model after quantize_preprocess (the seed flow up to calibration).

Checks: the modified ONNX runs in onnxruntime with the calibration module's outputs; scale_w
makes its weights integer; scale_d/offset_d appear exactly after batch_num forwards and equal
the IFMR kernel on the inputs the observers saw (the balanced X/s), after which forwards are
fake-quantized; factors stay in the record.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.errors import RecordError
from qdqforge.front.config import load_quant_config
from qdqforge.front.record import read_record, write_record
from qdqforge.graph import numerics
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from qdqforge.runtime.kernels.ifmr import IfmrObserver
from tests.helpers.state import assert_untouched, snapshot
from tests.integration.test_ptq_preprocess import ALPHA, MODELS, build


def write_config(tmp_path, model, x):
    cfg, definition = tmp_path / "config.json", tmp_path / "dmq.cfg"
    definition.write_text(
        f"batch_num: 2\ncommon_config {{ dmq_balancer {{ migration_strength: {ALPHA} }} }}\n"
    )
    qdqforge.create_quant_config(str(cfg), model, x, config_defination=str(definition))
    return cfg


def seen_inputs(module):
    seen = {}
    for op in module.modules():
        if isinstance(op, ActObserverOp):
            op.register_forward_pre_hook(lambda m, a: seen.setdefault(m.layer, []).append(a[0]))
    return seen


def weights_on_grid(onnx_file, records) -> None:
    proto = onnx.load(str(onnx_file))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    for layer, rec in records.items():
        w = next(v for k, v in inits.items() if k.startswith(f"{layer}.") and k.endswith(".arq"))
        axis = 1 if w.ndim > 2 and layer == "up" else 0
        scale = np.asarray(rec.scale_w).reshape([-1 if d == axis else 1 for d in range(w.ndim)])
        q = w / scale
        np.testing.assert_allclose(q, np.round(q), atol=2e-3, err_msg=layer)


@pytest.mark.parametrize("name", MODELS, ids=list(MODELS))
def test_seed_flow_until_calibration(tmp_path, name):
    model, batches = build(name)
    before = snapshot(model)
    cfg, record, onnx_file = (
        write_config(tmp_path, model, batches[0]),
        tmp_path / "r.txt",
        tmp_path / "m.onnx",
    )
    layers = load_quant_config(cfg).layer_names
    calib = qdqforge.quantize_preprocess(str(cfg), str(record), model, batches[0])
    with torch.no_grad():
        calib(batches[0])
    factors = {k: v.tensor_balance_factor for k, v in read_record(record).items()}

    calib = qdqforge.quantize_model(str(cfg), str(onnx_file), str(record), model, batches[0])
    seen = seen_inputs(calib)
    records = read_record(record)
    assert sorted(records) == sorted(layers)
    assert all(r.scale_d is None and r.scale_w for r in records.values())
    weights_on_grid(onnx_file, records)
    for count, x in enumerate(batches, start=1):
        with torch.no_grad():
            y = calib(x)
        want = numerics.run(
            onnx.load(str(onnx_file)), numerics.feeds_for(onnx.load(str(onnx_file)), [x.numpy()])
        )[0]
        if count <= 2:  # observing: float activations, exactly the modified ONNX
            np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)
        else:  # calibrated: activations fake-quantized, close to but not the float model
            assert 0 < np.abs(y.numpy() - want).max() <= 0.02 * np.abs(want).max()
        records = read_record(record)
        assert all((r.scale_d is not None) == (count >= 2) for r in records.values())
    for layer, rec in records.items():
        assert rec.tensor_balance_factor == factors[layer]
        ref = IfmrObserver(symmetric=False, expected_batches=2, layer=layer)
        for x in seen[layer][:2]:
            ref.update(x)
        params = ref.compute()
        assert (rec.offset_d, rec.scale_d) == (params.offset, pytest.approx(params.scale, rel=1e-6))
    assert_untouched(model, before)


def test_keywords_and_missing_factors(tmp_path):
    model, batches = build("cnn")
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "r.txt"
    write_record(record, {})
    with pytest.raises(RecordError, match="quantize_preprocess"):
        qdqforge.quantize_model(
            str(cfg),
            modified_onnx_file=str(tmp_path / "m.onnx"),
            record_file=str(record),
            model=model,
            input_data=batches[0],
        )
