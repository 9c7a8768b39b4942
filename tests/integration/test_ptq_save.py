"""save_model: the fake-quant QDQ model runs in onnxruntime, agrees with torch and the FP32 model.

Seed flow: quantize_preprocess -> forward -> quantize_model -> batch_num forwards -> save_model.
Torch (reimported QDQ -> fake-quant) vs onnxruntime: equal to 1e-6 (float accumulation order);
fake-quant vs FP32: max error <= 2% of the output range (W8A8; measured 0.1-0.7%); too few
calibration forwards: CalibrationError.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.errors import CalibrationError
from qdqforge.front.ptq_save import save_model
from qdqforge.graph import numerics
from qdqforge.runtime import reimport
from tests.integration.test_ptq_model import write_config
from tests.integration.test_ptq_preprocess import MODELS, build


def calibrate(tmp_path, name, forwards=2):
    model, batches = build(name)
    cfg, record, onnx_file = (
        write_config(tmp_path, model, batches[0]),
        tmp_path / "r.txt",
        tmp_path / "m.onnx",
    )
    with torch.no_grad():
        qdqforge.quantize_preprocess(str(cfg), str(record), model, batches[0])(batches[0])
        calib = qdqforge.quantize_model(str(cfg), str(onnx_file), str(record), model, batches[0])
        for x in batches[:forwards]:
            calib(x)
    return model, batches, onnx_file, record


@pytest.mark.parametrize("name", MODELS, ids=list(MODELS))
def test_fake_quant_model(tmp_path, name):
    model, batches, onnx_file, record = calibrate(tmp_path, name)
    path = save_model(str(onnx_file), str(record), str(tmp_path / "out" / "net"))

    assert path == tmp_path / "out" / "net_fake_quant_model.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    layers = len(qdqforge.front.record.read_record(record))
    assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) == 2 * layers
    module = reimport(proto)
    for x in batches:
        got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]
        with torch.no_grad():
            torch_out, fp32 = module(x).numpy(), model(x).numpy()
        np.testing.assert_allclose(torch_out, got, rtol=0, atol=1e-6)
        assert np.abs(got - fp32).max() <= 0.02 * np.abs(fp32).max()


def test_too_few_forwards_is_a_calibration_error(tmp_path):
    _, _, onnx_file, record = calibrate(tmp_path, "cnn", forwards=1)
    with pytest.raises(CalibrationError, match="batch_num"):
        save_model(str(onnx_file), str(record), str(tmp_path / "net"))
