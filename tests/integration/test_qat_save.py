"""save_quant_retrain_model on shallow nets: ORT within 1 LSB, BN folded on the same integer grid.

Tolerances are in quantization steps (Brevitas style): ``LSB = (max - min) / 255`` of the
``qat.eval()`` output. Measured on the conv net: fake-quant vs torch ~1e-3 LSB, deploy vs
fake-quant ~1e-5 LSB. Training runs through ``nn.DataParallel`` (on CPU it calls the module).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError, InputDataError
from qdqforge.front.qat_model import quant_parameters
from qdqforge.front.record import read_record
from tests.integration.qat_flow import error_in_lsb, ort_outputs, train, write_config
from tests.integration.test_ptq_preprocess import build


def ulq_retrain_dw(tree: dict) -> None:
    tree["dw"]["retrain_weight_config"]["algo"] = "ulq_retrain"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """SmallCnn (conv+BN+ReLU, depthwise, grouped, ConvTranspose, Linear) after 3 QAT steps."""
    tmp = tmp_path_factory.mktemp("qat_save")
    model, batches = build("cnn")
    cfg = write_config(tmp, model, batches[0], edit=ulq_retrain_dw)
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp / "r.txt"), batches[0])
    parallel = nn.DataParallel(qat)
    train(parallel, batches, steps=3)
    saved = qdqforge.save_quant_retrain_model(
        str(cfg), parallel, str(tmp / "r.txt"), str(tmp / "out" / "net"), batches[0],
        input_names=["image"], output_names=["logits"],
    )  # fmt: skip
    return qat, batches, cfg, tmp / "r.txt", saved


def test_fake_quant_and_deploy_agree_within_one_lsb(trained):
    qat, batches, _, _, saved = trained
    assert onnx.load(str(saved.fake_quant)).graph.output[0].name == "logits"
    qat.eval()
    for x in batches:
        with torch.no_grad():
            reference = qat(x).numpy()
        fake = ort_outputs(saved.fake_quant, x)
        assert error_in_lsb(fake, reference) <= 1.0
        if saved.deploy is not None:
            assert error_in_lsb(ort_outputs(saved.deploy, x), fake) <= 1.0


def initializer(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == name)


def test_bn_fold_keeps_the_integer_weight_grid(trained):
    qat, _, _, record, saved = trained
    proto = onnx.load(str(saved.fake_quant))
    quant = next(n for n in proto.graph.node if n.name == "conv1.weight_quant")
    folded, scale = initializer(proto, quant.input[0]), initializer(proto, quant.input[1])
    q_folded = np.round(folded / scale.reshape(-1, 1, 1, 1))
    w = qat.conv1.weight.detach()
    with torch.no_grad():
        s_w = qat.conv1.weight_quant.eval().scale(w)
    bn = qat.bn1
    g = (bn.weight / torch.sqrt(bn.running_var + 1e-5)).detach().numpy()
    q_qat = torch.round(w / s_w.reshape(-1, 1, 1, 1)).numpy()
    np.testing.assert_array_equal(q_folded, np.sign(g).reshape(-1, 1, 1, 1) * q_qat)
    rec = read_record(record)["conv1"]
    np.testing.assert_allclose(rec.scale_w, s_w.numpy() * np.abs(g), rtol=1e-6)


def test_record_holds_learned_state(trained):
    qat, _, _, record, _ = trained
    rec = read_record(record)
    assert rec["dw"].offset_d == -128  # input after ReLU: fixed_min, clip_min = 0
    learned = qat.dw.weight_quant.scale().detach().numpy()
    np.testing.assert_array_equal(np.float32(rec["dw"].scale_w), learned)
    assert len(rec["dw"].shift_bit) == 8 and rec["fc"].offset_w == (0,)
    quant, other = quant_parameters(qat)
    assert len(quant) == 10 and len(quant) + len(other) == len(list(qat.parameters()))


def test_bad_arguments_are_typed_errors(trained, tmp_path):
    qat, batches, cfg, _, _ = trained
    model, _ = build("cnn")
    with pytest.raises(InputDataError, match="tuple"):
        qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp_path / "r"), [batches[0]])
    with pytest.raises(ConfigError, match=r"torch\.nn\.Module"):
        qdqforge.create_quant_retrain_model(str(cfg), "model", str(tmp_path / "r"), batches[0])
    with pytest.raises(ConfigError, match="not a QAT model"):
        qdqforge.save_quant_retrain_model(str(cfg), model, str(tmp_path / "r"), "o", batches[0])
    other = tmp_path / "other.json"
    text = cfg.read_text()
    other.write_text(text.replace('"retrain_enable": true', '"retrain_enable": false', 1))
    with pytest.raises(ConfigError, match="layer 'conv1'"):
        qdqforge.save_quant_retrain_model(str(other), qat, str(tmp_path / "r"), "o", batches[0])


def test_shallow_transformer_block_within_one_lsb(tmp_path):
    model, batches = build("transformer")  # LayerNorm -> Linear(3-D) -> GELU -> Linear, residual
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "r.txt"
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), batches[0])
    train(qat, batches, steps=2)
    saved = qdqforge.save_quant_retrain_model(
        str(cfg), qat, str(record), str(tmp_path / "net"), batches[0]
    )
    assert sorted(read_record(record)) == ["fc1", "fc2"]
    qat.eval()
    for x in batches:
        with torch.no_grad():
            reference = qat(x).numpy()
        assert error_in_lsb(ort_outputs(saved.fake_quant, x), reference) <= 1.0
