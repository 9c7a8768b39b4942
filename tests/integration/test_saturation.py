"""int8 saturation in a default onnxruntime session is named; ``weight_reduce_range`` removes it.

A planted conv: its input is positive and large (asymmetric grid, zero point -128: the kernel
sees u8 near 255), its weights one constant per output channel (ARQ puts them all at +-127),
and the next layer's quantizer follows its ReLU (so onnxruntime fuses it into a QLinearConv):
adjacent u8 x s8 products sum to 64,770 per pair, beyond int16. On a CPU without VNNI the QDQ
model's QLinearConv saturates those pairs: the save-time check names the kernel, the layer, the
cause and the fix in ``_verify.json`` and one warning, and still passes (the models are right).
With ``"weight_reduce_range": true`` the weights are on 7 bits (|q| <= 64, pairs <= 32,640): no
warning, and the QDQ model in a default session equals it with optimizations off. The
fake-quant model is exact either way. On a VNNI CPU nothing saturates: no warning in both.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify_runtime import cpu_has_vnni
from qdqforge.graph import numerics
from tests.helpers.ptq_flow import run_seed_flow


class Planted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 1)  # its quantizer right after conv's ReLU: a QLinearConv
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 2.0]).view(4, 1, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv(torch.relu(x) + 4.0)))
        return self.fc(torch.relu(y).mean((2, 3)))


def save(tmp_path, reduce_range: bool):
    torch.manual_seed(0)
    model, x = Planted().eval(), torch.rand(2, 16, 6, 6)
    cfg = tmp_path / "c.json"
    qdqforge.create_quant_config(str(cfg), model, x)
    tree = json.loads(cfg.read_text())
    tree["weight_reduce_range"] = reduce_range
    cfg.write_text(json.dumps(tree))
    run_seed_flow(cfg, tmp_path / "r.txt", tmp_path / "m.onnx", model, [x], with_dmq=False)
    paths = qdqforge.save_model(str(tmp_path / "m.onnx"), str(tmp_path / "r.txt"),
                                str(tmp_path / "net"))  # fmt: skip
    report = json.loads((tmp_path / "net_verify.json").read_text())
    return paths, report, x


def test_saturation_is_named_with_cause_and_fix(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        paths, report, x = save(tmp_path, reduce_range=False)
    if cpu_has_vnni() is not False:
        pytest.skip("this CPU has VNNI: its int8 kernels do not saturate")
    assert report["status"] == "passed_with_runtime_warnings" and report["passed"] is True
    (issue,) = [w for w in report["runtime_warnings"] if w["layer"] == "conv"]
    assert issue["model"] == "qdq" and "QLinearConv" in issue["effect"]
    assert "saturation" in issue["cause"] and "VNNI" in issue["cause"]
    assert "weight_reduce_range" in issue["fix"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("conv" in m and "weight_reduce_range" in m for m in warned)
    assert _default_vs_off(paths.qdq, x) > 0.05  # the user would see it
    assert _default_vs_off(paths.fake_quant, x) == 0.0


def test_reduce_range_removes_it(tmp_path):
    paths, report, x = save(tmp_path, reduce_range=True)
    assert report["status"] == "passed" and report["runtime_warnings"] == []
    record = read_record(tmp_path / "r.txt")
    assert {r.dst_type for r in record.values()} == {"INT7"}
    for node in onnx.load(str(paths.deploy)).graph.initializer:
        if node.data_type == onnx.TensorProto.INT8 and len(node.dims) > 1:
            weights = onnx.numpy_helper.to_array(node)
            assert weights.min() >= -64 and weights.max() <= 63
    assert _default_vs_off(paths.qdq, x) < 1e-5


def _default_vs_off(path, x) -> float:
    proto = onnx.load(str(path))
    feeds = numerics.feeds_for(proto, [x.numpy()])
    want = numerics.run(proto, feeds)[0]
    got = numerics.default_session(proto).run(None, feeds)[0]
    return float(np.abs(got - want).max() / np.abs(want).max())
