"""A record reused by a new quantize_model keeps nothing of the earlier run's grids.

``save_model`` quantizes every layer the record holds grids for. Before, a layer that a second
config disabled (the usual way to win accuracy back) kept the first run's ``scale_w`` and
``scale_d`` in the reused record and was quantized all the same, silently. Now every entry that
the new ``quantize_model`` does not quantize loses its grids (DMQ's factors stay).
"""

from __future__ import annotations

import json

import onnx
import torch

import qdqforge
from qdqforge.front.record.file import read_record, update_records
from tests.reliability.world import net_and_input


def quantized_inputs(path) -> set[str]:
    return {n.input[0] for n in onnx.load(str(path)).graph.node if n.op_type == "QuantizeLinear"}


def test_a_layer_disabled_in_a_rerun_stays_float(tmp_path):
    model, x = net_and_input()
    config, onnx_file, record = tmp_path / "c.json", tmp_path / "m.onnx", tmp_path / "r.txt"
    qdqforge.create_quant_config(str(config), model, x, batch_num=1)
    with torch.no_grad():
        qdqforge.quantize_model(str(config), str(onnx_file), str(record), model, x)(x)
    first = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "first"))
    fc_input = quantized_inputs(first.qdq) - {"input"}
    assert len(fc_input) == 1  # conv's input and fc's
    update_records(record, {"fc": {"tensor_balance_factor": [1.0] * 4}})  # as DMQ would

    tree = json.loads(config.read_text())
    tree["fc"]["quant_enable"] = False
    config.write_text(json.dumps(tree))
    with torch.no_grad():
        qdqforge.quantize_model(str(config), str(onnx_file), str(record), model, x)(x)
    fc = read_record(record)["fc"]
    assert (fc.scale_d, fc.scale_w, fc.offset_d, fc.dst_type) == (None, (), None, None)
    assert fc.tensor_balance_factor == (1.0,) * 4
    second = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "second"))
    assert quantized_inputs(second.qdq) == {"input"}  # conv only: fc stays float
    assert json.loads((tmp_path / "second_verify.json").read_text())["passed"] is True
