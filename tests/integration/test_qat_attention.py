"""QAT of MatMuls between two activations (Q·Kᵀ, attention·V) on a two-block attention model.

The ``MatMul`` layers (``blocks.<i>.matmul_0`` = Q·Kᵀ, ``blocks.<i>.matmul_1`` = attention·V)
are switched on by a ``.cfg`` (``override_layer_types { layer_type: "MatMul" }``) or the JSON's
``retrain_enable``; each gets a ULQ activation quantizer on both operands. Tolerances are in
steps of the output's int8 range, ``LSB = (max - min) / 255`` (``qat_flow.error_in_lsb``).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

import qdqforge
from qdqforge.front.record.file import read_record
from qdqforge.runtime.kernels.ulq import ulq_scale_offset
from tests.helpers.qat_flow import error_in_lsb, train
from tests.helpers.torch_models import build

MATMULS = [f"blocks.{i}.matmul_{k}" for i in range(2) for k in range(2)]
ON = 'override_layer_types { layer_type: "MatMul" }\n'


def _batches(x: torch.Tensor) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [x, *(torch.randn(x.shape, generator=generator) for _ in range(2))]


def _qat(tmp_path, cfg_text: str | None = None, edit=None):
    model, (x,) = build("hand_attention")
    cfg, defination = tmp_path / "qat.json", None
    if cfg_text is not None:
        defination = tmp_path / "qat.cfg"
        defination.write_text(cfg_text)
    qdqforge.create_quant_retrain_config(str(cfg), model, x, config_defination=defination)
    if edit is not None:
        tree = json.loads(cfg.read_text())
        edit(tree)
        cfg.write_text(json.dumps(tree))
    record = tmp_path / "record.txt"
    return qdqforge.create_quant_retrain_model(str(cfg), model, str(record), x), cfg, record, x


def _reduce_range(tree: dict) -> None:
    # 7-bit weights: no u8 x s8 pair saturates in an x86 kernel without VNNI, so the QDQ model's
    # runtime-stage warning (the machine's, not the flow's) cannot appear.
    tree["weight_reduce_range"] = True


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qat_attention")
    qat, cfg, record, x = _qat(tmp, ON, edit=_reduce_range)
    batches = _batches(x)
    train(qat, batches, steps=3, lr=0.01)
    saved = qdqforge.save_quant_retrain_model(str(cfg), qat, str(record), str(tmp / "net"), x)
    return qat, batches, record, saved


def _clips(qat) -> dict[str, torch.nn.Module]:
    names = [n for m in MATMULS for n in (m, f"{m}.input_1")]
    return {n: qat.get_submodule(f"{n}.act_quant") for n in names}


def test_both_operands_get_a_trainable_quantizer(tmp_path):
    qat, _, _, x = _qat(tmp_path, ON)
    qat.train()
    qat(x)  # batch_num 1: this forward initializes the clips (IFMR)
    loss = qat(x).square().mean()
    loss.backward()
    for name, op in _clips(qat).items():
        grads = [p.grad for p in (op.clip_max, op.clip_min)]
        assert all(g is not None for g in grads), name
        assert any(float(g.abs()) > 0 for g in grads), f"{name}: no gradient reaches its clips"


def test_json_retrain_enable_switches_one_matmul(tmp_path):
    def enable(tree):
        tree["blocks.1.matmul_1"]["retrain_enable"] = True

    qat, *_ = _qat(tmp_path, edit=enable)
    quantizers = {n for n, _ in qat.named_modules() if n.endswith(".act_quant")}
    assert {"blocks.1.matmul_1.act_quant", "blocks.1.matmul_1.input_1.act_quant"} <= quantizers
    assert not any(n.startswith(("blocks.0.matmul", "blocks.1.matmul_0")) for n in quantizers)


def test_off_by_default_and_warning_free(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        qat, cfg, record, x = _qat(tmp_path, edit=_reduce_range)
        train(qat, _batches(x), steps=1, lr=0.01)
        qdqforge.save_quant_retrain_model(str(cfg), qat, str(record), str(tmp_path / "net"), x)
    config = json.loads(cfg.read_text())
    assert all(config[m]["retrain_enable"] is False for m in MATMULS)
    assert not any(".matmul_" in n for n, _ in qat.named_modules())
    assert not any(".matmul_" in layer for layer in read_record(record))
    assert [r.getMessage() for r in caplog.records] == []


def test_saved_and_verified(trained):
    _, _, _, saved = trained
    report = json.loads(saved.fake_quant.with_name("net_verify.json").read_text())
    assert report["status"] == "passed", report  # no runtime warning either
    compared = {t["tensor"]: t for t in report["comparisons"]["torch_vs_fake_quant"]["tensors"]}
    for layer in MATMULS:
        for tensor in (f"{layer}.quant.out", f"{layer}.input_1.quant.out"):
            assert compared[tensor]["max_steps"] == 0, tensor  # measured: every integer equal


def test_fake_quant_model_in_default_session_equals_the_qat_module(trained):
    qat, batches, _, saved = trained
    session = ort.InferenceSession(str(saved.fake_quant))  # default session settings
    qat.eval()
    for x in batches:
        with torch.no_grad():
            reference = qat(x).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert error_in_lsb(got, reference) <= 1e-4


def test_record_holds_both_operands_grids(trained):
    qat, _, record, _ = trained
    records = read_record(record)
    for name, op in _clips(qat).items():
        layer = name.removesuffix(".input_1")
        with torch.no_grad():
            scale, offset = ulq_scale_offset(*op.clips(), op.num_bits)
        rec = records[layer]
        second = name.endswith(".input_1")
        got = (rec.scale_h, rec.offset_h) if second else (rec.scale_d, rec.offset_d)
        assert got == (float(scale), int(offset)), name  # float32 text reads back exactly
    for layer in MATMULS:
        assert records[layer].scale_w == () and records[layer].shift_bit == ()


def test_qdq_and_deploy_quantize_both_operands(trained):
    _, _, record, saved = trained
    records = read_record(record)
    for path in (saved.qdq, saved.deploy):
        proto = onnx.load(str(path))
        consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        quants = {n.output[0]: n for n in proto.graph.node if n.op_type == "QuantizeLinear"}
        for layer in MATMULS:
            for tensor, scale, zero in (
                (f"{layer}.quant.out", records[layer].scale_d, records[layer].offset_d),
                (f"{layer}.input_1.quant.out", records[layer].scale_h, records[layer].offset_h),
            ):
                node = quants[tensor]
                assert float(consts[node.input[1]]) == np.float32(scale), tensor
                assert int(consts[node.input[2]]) == zero, tensor


def test_restore_gives_back_the_trained_quantizers(trained, tmp_path):
    qat, batches, _, _ = trained
    model, (x,) = build("hand_attention")
    cfg = tmp_path / "qat.json"
    (tmp_path / "qat.cfg").write_text(ON)
    qdqforge.create_quant_retrain_config(
        str(cfg), model, x, config_defination=str(tmp_path / "qat.cfg")
    )
    tree = json.loads(cfg.read_text())
    _reduce_range(tree)
    cfg.write_text(json.dumps(tree))
    torch.save({"model": qat.state_dict()}, tmp_path / "ckpt.pth")
    restored = qdqforge.restore_quant_retrain_model(
        str(cfg), model, str(tmp_path / "r.txt"), x, str(tmp_path / "ckpt.pth"), "model"
    )
    assert _clips(restored).keys() == _clips(qat).keys()
    with torch.no_grad():
        assert torch.equal(restored.eval()(batches[1]), qat.eval()(batches[1]))
