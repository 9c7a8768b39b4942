"""An activation MatMul whose two operands are one tensor that a Linear also reads.

``y = fc2(h @ h) + fc3(h)`` with ``h = fc1(x)`` square: the top-level ``matmul_0`` (switched on by
its name) gets observers on both operands and ``fc3`` one on its input, three observers of ``h``
with equal settings. ``share_observers`` lets the first observe and the others copy its grid:
one statistic, so ``scale_d``/``offset_d``, ``scale_h``/``offset_h`` and ``fc3``'s
``scale_d``/``offset_d`` are equal, and the saved models verify.
"""

from __future__ import annotations

import json

import torch
from torch import nn

import qdqforge
from qdqforge.front.record.file import read_record
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from tests.helpers.attention_flow import attention_batches as _batches
from tests.helpers.attention_flow import attention_config as _config
from tests.helpers.ptq_flow import run_seed_flow


class SquareMatMul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 4), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(torch.matmul(h, h)) + self.fc3(h)


def test_one_tensor_observed_once_for_both_operands_and_a_linear(tmp_path):
    model, x = SquareMatMul().eval(), torch.randn(2, 8, 8)
    text = 'override_layer_configs { layer_name: "matmul_0" calibration_config {} }'
    cfg = _config(tmp_path, model, x, text)
    record, onnx_file = tmp_path / "r.txt", tmp_path / "m.onnx"
    calib = run_seed_flow(cfg, record, onnx_file, model, _batches(x), with_dmq=False)
    observers = {op.layer: op for op in calib.modules() if isinstance(op, ActObserverOp)}
    followers = {name for name, op in observers.items() if op.leader is not None}
    assert len({"matmul_0", "matmul_0.input_1", "fc3"} - followers) == 1  # one leader observes
    records = read_record(record)
    grid = (records["matmul_0"].scale_d, records["matmul_0"].offset_d)
    assert (records["matmul_0"].scale_h, records["matmul_0"].offset_h) == grid
    assert (records["fc3"].scale_d, records["fc3"].offset_d) == grid
    qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"))
    report = json.loads((tmp_path / "net_verify.json").read_text())
    assert report["status"] == "passed", report
