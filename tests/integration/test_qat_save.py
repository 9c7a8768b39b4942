"""save_quant_retrain_model on shallow nets: ORT reproduces the QAT module, BN folded exactly.

Tolerances are in quantization steps (Brevitas style): ``LSB = (max - min) / 255`` of the
``qat.eval()`` output. Measured (both nets, 3 batches): fake-quant vs torch <= 8.8e-6 LSB
(float summation order; the budget 1e-4), deploy vs QDQ <= 1.5e-5 LSB (the same integers;
budget 1e-4), QDQ vs fake-quant <= 8.8e-4 LSB (the int32 bias; budget 1e-2). Training runs
through ``nn.DataParallel`` (on CPU it calls the module).
"""

from __future__ import annotations

import filecmp

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError, InputDataError
from qdqforge.front.qat.record import WEIGHT_OPS, ops_by_layer
from qdqforge.front.qat.retrain_model import quant_parameters
from qdqforge.front.record.file import read_record
from qdqforge.front.save import save_retrain_model
from qdqforge.graph import io
from qdqforge.graph.mapped import SpillFile
from tests.helpers.dmq_flow import build
from tests.helpers.qat_flow import error_in_lsb, ort_outputs, train, write_config


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


def assert_outputs_agree(qat, saved, batches) -> None:
    qat.eval()
    for x in batches:
        with torch.no_grad():
            reference = qat(x).numpy()
        fake, qdq = ort_outputs(saved.fake_quant, x), ort_outputs(saved.qdq, x)
        assert error_in_lsb(fake, reference) <= 1e-4
        assert error_in_lsb(ort_outputs(saved.deploy, x), qdq) <= 1e-4
        assert error_in_lsb(qdq, fake) <= 1e-2


def test_saved_models_agree_with_the_qat_module(trained):
    qat, batches, _, _, saved = trained
    assert onnx.load(str(saved.fake_quant)).graph.output[0].name == "logits"
    assert_outputs_agree(qat, saved, batches)


def initializer(proto: onnx.ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in proto.graph.initializer if i.name == name)


def test_bn_fold_keeps_the_integer_weight_grid(trained):
    qat, _, _, record, saved = trained
    rec = read_record(record)["conv1"]
    scale = np.float32(rec.scale_w).reshape(-1, 1, 1, 1)
    proto = onnx.load(str(saved.fake_quant))
    conv = next(n for n in proto.graph.node if n.input[0] == "conv1.dequant.out")
    q_folded = initializer(proto, conv.input[1]) / scale  # stored dequantized, as float
    w = qat.conv1.weight.detach()
    with torch.no_grad():
        s_w = qat.conv1.weight_quant.eval().scale(w)
        w_q = qat.conv1.weight_quant(w)[0]  # the module's own weight, clamp included
    bn = qat.bn1
    g = (bn.weight / torch.sqrt(bn.running_var + 1e-5)).detach().numpy()
    q_qat = torch.round(w_q / s_w.reshape(-1, 1, 1, 1)).numpy()
    want = np.sign(g).reshape(-1, 1, 1, 1) * q_qat  # -128 under a negative gamma: +128
    np.testing.assert_array_equal(np.round(q_folded), want)
    np.testing.assert_allclose(q_folded, want, atol=1e-4)  # measured 7.6e-6 steps (float32 /)
    qdq = onnx.load(str(saved.qdq))
    dq = next(n for n in qdq.graph.node if n.name == "conv1.weight_dequant")
    np.testing.assert_array_equal(initializer(qdq, dq.input[0]), np.clip(want, -128, 127))
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


def test_shallow_transformer_block_agrees(tmp_path):
    model, batches = build("transformer")  # LayerNorm -> Linear(3-D) -> GELU -> Linear, residual
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "r.txt"
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), batches[0])
    train(qat, batches, steps=2)
    saved = qdqforge.save_quant_retrain_model(
        str(cfg), qat, str(record), str(tmp_path / "net"), batches[0]
    )
    assert sorted(read_record(record)) == ["fc1", "fc2"]
    assert_outputs_agree(qat, saved, batches)


def test_verification_neither_computes_nor_adds_search_n_statistics(trained, tmp_path, monkeypatch):
    """The save's statistics forward runs once; its verification forward is paused (each
    search-N accumulation of a ResNet-18 cost 0.2-0.7 s a layer)."""
    from qdqforge.runtime.modules.qat_search_n import SearchNOp

    qat, batches, cfg, record, _ = trained
    qat.eval()
    with torch.no_grad():
        qat(batches[0])  # statistics for the current weights: the save needs no forward of its own
    before = {op.layer: op.error.clone() for op in qat.modules() if isinstance(op, SearchNOp)}
    calls = []
    original = SearchNOp._accumulate
    monkeypatch.setattr(
        SearchNOp, "_accumulate", lambda op, *a: calls.append(op.layer) or original(op, *a)
    )
    qdqforge.save_quant_retrain_model(str(cfg), qat, str(record), str(tmp_path / "net"), batches[0])
    assert before and calls == []
    after = {op.layer: op.error for op in qat.modules() if isinstance(op, SearchNOp)}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(op.paused for op in qat.modules() if isinstance(op, SearchNOp))


def test_spilled_fake_quantized_weights_save_the_same_files(tmp_path, monkeypatch, caplog):
    """Past the external-data threshold each fake-quantized weight goes through the spill file
    (BN folded from its read-only view): the files equal, byte for byte, those of a save that
    could make no spill file and held the weights, and the spill leaves no file behind."""
    model, batches = build("cnn")
    cfg = write_config(tmp_path, model, batches[0], edit=ulq_retrain_dw)
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp_path / "r.txt"), batches[0])
    train(qat, batches, steps=1)
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 1024)
    spilled, put = [], SpillFile.put
    monkeypatch.setattr(SpillFile, "put", lambda self, a: spilled.append(a.shape) or put(self, a))
    saved = {}
    for how in ("spilled", "held"):
        if how == "held":
            monkeypatch.setattr(save_retrain_model, "SpillFile", refuse_spill)
        out = tmp_path / how
        out.mkdir()
        record = out / "r.txt"
        saved[how] = qdqforge.save_quant_retrain_model(
            str(cfg), qat, str(record), str(out / "net"), batches[0]
        )
    assert len(spilled) == len(ops_by_layer(qat, WEIGHT_OPS)) > 0  # in the first save only
    assert "no spill file" in caplog.text
    names = {how: sorted(p.name for p in (tmp_path / how).iterdir()) for how in saved}
    assert names["spilled"] == names["held"]
    assert "net_fake_quant_model.onnx.data" in names["held"]
    for name in (n for n in names["held"] if not n.endswith("_verify.json")):  # names its path
        same = filecmp.cmp(tmp_path / "spilled" / name, tmp_path / "held" / name, shallow=False)
        assert same, name


def refuse_spill(folder):
    raise OSError(f"read-only file system: {folder}")
