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
from qdqforge.front.record.file import read_record, write_record
from qdqforge.graph import numerics
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from tests.helpers.dmq_flow import MODELS, build, write_calibration_config
from tests.helpers.state import assert_untouched, snapshot


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
        write_calibration_config(tmp_path, model, batches[0]),
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
    cfg, record = write_calibration_config(tmp_path, model, batches[0]), tmp_path / "r.txt"
    write_record(record, {})
    with pytest.raises(RecordError, match="quantize_preprocess"):
        qdqforge.quantize_model(
            str(cfg),
            modified_onnx_file=str(tmp_path / "m.onnx"),
            record_file=str(record),
            model=model,
            input_data=batches[0],
        )


def test_observers_of_one_tensor_share_one_computation(tmp_path):
    """q/k/v-style siblings: one observer computes, the others copy; the record is unchanged."""
    from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp

    class Siblings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (torch.nn.Linear(6, 6) for _ in range(3))

        def forward(self, x):
            return self.q(x) * self.k(x) + self.v(x)

    torch.manual_seed(0)
    model, batches = Siblings().eval(), [torch.randn(4, 6) for _ in range(2)]
    records = []
    for share in (True, False):
        cfg, record = tmp_path / f"c{share}.json", tmp_path / f"r{share}.txt"
        qdqforge.create_quant_config(str(cfg), model, batches[0], batch_num=2)
        calib = qdqforge.quantize_model(str(cfg), str(tmp_path / f"m{share}.onnx"), str(record),
                                        model, batches[0])  # fmt: skip
        ops = [op for op in calib.modules() if isinstance(op, ActObserverOp)]
        if not share:
            for op in ops:
                object.__setattr__(op, "leader", None)
        with torch.no_grad():
            for x in batches:
                calib(x)
        leaders = [op for op in ops if op.leader is None]
        assert len(ops) == 3 and len(leaders) == (1 if share else 3)
        assert all(op.observer.numel == 0 for op in ops if op.leader is not None)
        records.append(read_record(record))
    assert records[0] == records[1] and all(r.scale_d for r in records[0].values())
