"""Smoke tests of bench/ptq.py's helpers: the generated ``.cfg`` (instant), and one digits W8A8
flow (marked slow: ~9 s idle, over a minute on a loaded 2-core machine; mostly three exports):
the fake-quant model evaluated in onnxruntime's default session close to FP32, and the
activation Q/DQ ablation removing exactly one pair per layer of the QDQ model.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from bench.digits import load_split, top1, train
from bench.ptq_digits import digits_task
from bench.ptq_flow import PtqSettings, cfg_text
from bench.ptq_rows import qdqforge_row
from bench.qdq_ablation import activation_layers, without_activation_qdq
from qdqforge.errors import ConfigError
from qdqforge.front.config import QuantLayer, build_quant_config
from qdqforge.front.proto.text import parse_text


def test_cfg_text_has_dmq_overrides_and_skips():
    settings = PtqSettings(alpha=0.5, layer_alphas=(("fc", 0.3),), skip_layers=("conv",))
    text = cfg_text(settings, 4)
    assert text.splitlines()[:2] == ["batch_num: 4", 'skip_layers: "conv"']
    assert "common_config { ifmr_quantize { } dmq_balancer { migration_strength: 0.5 } }" in text
    assert 'layer_name: "fc" calibration_config' in text and "migration_strength: 0.3" in text


def test_cfg_text_puts_int16_layers_in_overrides_that_parse():
    settings = PtqSettings(alpha=0.5, layer_alphas=(("fc1", 0.3),), int16_layers=("fc1", "fc2"))
    text = cfg_text(settings, 2)
    assert text.count("override_layer_configs") == 2 and text.count("dst_type: INT16") == 2
    layers = [QuantLayer(name, "Linear") for name in ("fc1", "fc2", "fc3")]
    config = build_quant_config(parse_text(text, "AMCTConfig", ConfigError, "q.cfg"), layers, "q")
    bits = {layer.name: layer.activation_quant_params.num_bits for layer in config.layers}
    assert bits == {"fc1": 16, "fc2": 16, "fc3": 8}
    alphas = {layer.name: layer.dmq_balancer_param for layer in config.layers}
    assert alphas == {"fc1": 0.3, "fc2": 0.5, "fc3": 0.5}


def test_cfg_text_puts_ada_everywhere_but_arq_layers():
    settings = PtqSettings(ada_iterations=300, int16_layers=("fc1",), arq_layers=("fc3",))
    text = cfg_text(settings, 2)
    layers = [QuantLayer(name, "Linear") for name in ("fc1", "fc2", "fc3")]
    config = build_quant_config(parse_text(text, "AMCTConfig", ConfigError, "q.cfg"), layers, "q")
    weights = {layer.name: layer.weight_quant_params for layer in config.layers}
    assert {k: w.wts_algo for k, w in weights.items()} == {
        "fc1": "ada_quantize",
        "fc2": "ada_quantize",
        "fc3": "arq_quantize",
    }
    assert weights["fc1"].num_iteration == weights["fc2"].num_iteration == 300
    assert config.layer("fc1").activation_quant_params.num_bits == 16


def test_cfg_text_weight_reduce_range_gives_7_bit_weights():
    layers = [QuantLayer(name, "Linear") for name in ("fc1", "fc2")]
    for reduced, bits in ((False, 8), (True, 7)):
        text = cfg_text(PtqSettings(weight_reduce_range=reduced), 2)
        assert ("weight_reduce_range: true" in text) is reduced
        proto = parse_text(text, "AMCTConfig", ConfigError, "q.cfg")
        config = build_quant_config(proto, layers, "q")
        assert config.weight_reduce_range is reduced
        assert {config.weight_bits(layer) for layer in config.layers} == {bits}


@pytest.mark.slow
def test_digits_w8a8_row_and_ablation(tmp_path):
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = load_split()
    model = train(x_train[:512], y_train[:512], epochs=3)
    with torch.no_grad():
        fp32 = model(x_test).numpy()
    task = digits_task(y_test, x_test, fp32)
    row = qdqforge_row(task, "w8a8", model, [x_train[:64]], tmp_path, PtqSettings())

    # no VerificationError; at most save_model's runtime warning (int8 kernels of this CPU)
    assert row.note == "" or row.note.startswith("runtime warning: qdq at "), row.note
    assert row.target in ("met", "missed")
    drop = float(row.fake.split("(")[1].rstrip(")"))
    assert abs(drop) <= 2.0, row  # a 3-epoch net: W8A8 within 2 pt of FP32
    assert top1(fp32, y_test) > 80
    fake = onnx.load(str(tmp_path / "net_fake_quant_model.onnx"))
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in fake.graph.node}
    proto = onnx.load(str(tmp_path / "net_qdq_model.onnx"))
    layers = activation_layers(proto)
    assert len(layers) == 4  # three convs and the Linear
    stripped = without_activation_qdq(proto, layers)
    onnx.checker.check_model(stripped)
    count = sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert sum(n.op_type == "QuantizeLinear" for n in stripped.graph.node) == count - len(layers)
