"""All ten public functions on one model object leave it exactly as it was.

After each call (and after running the module it returned: calibration forwards, QAT training
steps; ``analyze`` with and without a record; ``accuracy_based_auto_calibration``'s trials,
sensitivity ranking and verified save), every parameter and buffer is bit-identical, each
submodule's ``training`` flag,
``requires_grad``, parameter identity, ``.grad``, dtype and device are unchanged, and no hook of
any kind (module, global, tensor) was added. The model is in ``train()`` with one BN in
``eval()`` and a frozen bias, so a call that switched modes or shared tensors would show.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

import qdqforge
from tests.helpers.state import assert_untouched, snapshot
from tests.reliability.world import DMQ_CFG

MODULE_HOOKS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)  # fmt: skip
GLOBAL_HOOKS = (
    "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
    "_global_backward_pre_hooks", "_global_module_registration_hooks",
    "_global_parameter_registration_hooks", "_global_buffer_registration_hooks",
)  # fmt: skip


class UserNet(nn.Module):
    """``width`` 8: every weight is small (held in the exported proto); 192: ``conv2.weight``
    (1.3 MiB) is at least ``cache_weights.HELD_BYTES``, so the flows' graphs hold a read-only
    view of the model's own tensor."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.drop, self.fc = nn.Dropout(0.1), nn.Linear(width, 5)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn(self.conv(x))))))
        return self.fc(self.drop(x.mean((2, 3))))


def full_snapshot(model: nn.Module) -> dict:
    """:func:`tests.helpers.state.snapshot` plus every hook table, grads, dtypes and devices."""
    return {
        "hooks": {
            name: {h: len(getattr(m, h)) for h in MODULE_HOOKS} for name, m in model.named_modules()
        },
        "global": {h: len(getattr(torch_module, h)) for h in GLOBAL_HOOKS},
        "tensor_hooks": {k: len(p._backward_hooks or {}) for k, p in model.named_parameters()},
        "grads": {k: p.grad is None for k, p in model.named_parameters()},
        "where": {k: (v.dtype, v.device) for k, v in model.state_dict(keep_vars=True).items()},
        "version": {k: v._version for k, v in model.state_dict(keep_vars=True).items()},
    }


def _check(model, before, extra_before, step: str) -> None:
    try:
        assert_untouched(model, before)
        assert full_snapshot(model) == extra_before
    except AssertionError as e:
        raise AssertionError(f"after {step}: {e}") from e


def user_model(width: int = 8) -> UserNet:
    """In ``train()`` with one BN in ``eval()`` and a frozen bias (module docstring)."""
    torch.manual_seed(0)
    model = UserNet(width).train()
    model.bn2.eval()
    model.conv.bias.requires_grad_(False)
    return model


def dmq_config(model: nn.Module, x: torch.Tensor, tmp_path) -> str:
    cfg = str(tmp_path / "c.json")
    (tmp_path / "dmq.cfg").write_text(DMQ_CFG)
    qdqforge.create_quant_config(cfg, model, x, config_defination=str(tmp_path / "dmq.cfg"))
    return cfg


def _shares_no_memory(module: nn.Module, model: nn.Module, step: str) -> None:
    """No tensor of ``module`` (returned by an API call) lies in memory of ``model``'s."""
    theirs = {t.untyped_storage().data_ptr() for t in model.state_dict(keep_vars=True).values()}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if tensor.numel():
            assert tensor.untyped_storage().data_ptr() not in theirs, f"{step}: {name}"


@pytest.mark.parametrize("width", [8, 192])
def test_eight_public_functions_leave_the_model_untouched(tmp_path, width):
    model, x = user_model(width), torch.randn(4, 3, 8, 8)
    before, extra = snapshot(model), full_snapshot(model)
    qat_cfg = str(tmp_path / "q.json")
    record, onnx_file = str(tmp_path / "r.txt"), str(tmp_path / "m.onnx")

    cfg = dmq_config(model, x, tmp_path)
    _check(model, before, extra, "create_quant_config")
    calib = qdqforge.quantize_preprocess(cfg, record, model, x)
    _shares_no_memory(calib, model, "quantize_preprocess")
    with torch.no_grad():
        calib(x)
    _check(model, before, extra, "quantize_preprocess")
    calib = qdqforge.quantize_model(cfg, onnx_file, record, model, x)
    _shares_no_memory(calib, model, "quantize_model")
    with torch.no_grad():
        calib(x), calib(x)
    _check(model, before, extra, "quantize_model")
    qdqforge.save_model(onnx_file, record, str(tmp_path / "ptq" / "net"))
    _check(model, before, extra, "save_model")

    qdqforge.create_quant_retrain_config(qat_cfg, model, x)
    _check(model, before, extra, "create_quant_retrain_config")
    qat = qdqforge.create_quant_retrain_model(qat_cfg, model, str(tmp_path / "q.txt"), x)
    _shares_no_memory(qat, model, "create_quant_retrain_model")
    _train(qat, x)
    _check(model, before, extra, "create_quant_retrain_model (and 3 SGD steps)")
    torch.save(qat.state_dict(), tmp_path / "ckpt.pth")
    qdqforge.save_quant_retrain_model(
        qat_cfg, qat, str(tmp_path / "q.txt"), str(tmp_path / "qat" / "net"), x
    )
    _check(model, before, extra, "save_quant_retrain_model")
    restored = qdqforge.restore_quant_retrain_model(
        qat_cfg, model, str(tmp_path / "q.txt"), x, str(tmp_path / "ckpt.pth")
    )
    _shares_no_memory(restored, model, "restore_quant_retrain_model")
    _train(restored, x)
    _check(model, before, extra, "restore_quant_retrain_model (and 3 SGD steps)")
    assert not torch.equal(restored.state_dict()["fc.weight"], model.fc.weight)  # it trained


class FirstTrialFails:
    """AMCT's evaluator interface; the first trial fails, so the sensitivity ranking runs too.

    ``evaluate`` scores a copy in eval mode: the user's own ``train()`` model would update its
    BN statistics in a forward, which is the evaluator's doing, not qdqforge's.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.judged = x, 0

    def calibration(self, module):
        with torch.no_grad():
            module(self.x), module(self.x)  # batch_num: 2

    def evaluate(self, module):
        with torch.no_grad():
            return float(copy.deepcopy(module).eval()(self.x).square().mean())

    def metric_eval(self, original, new):
        self.judged += 1
        return self.judged > 1, abs(original - new)


def test_doctor_and_auto_calibration_leave_the_model_untouched(tmp_path):
    model, x = user_model(), torch.randn(4, 3, 8, 8)
    cfg = dmq_config(model, x, tmp_path)
    before, extra = snapshot(model), full_snapshot(model)
    record, onnx_file = str(tmp_path / "r.txt"), str(tmp_path / "m.onnx")

    report = qdqforge.analyze(cfg, model, x)
    _check(model, before, extra, "analyze")
    calib = qdqforge.quantize_preprocess(cfg, record, model, x)
    with torch.no_grad():
        calib(x)
    calib = qdqforge.quantize_model(cfg, onnx_file, record, model, x)
    with torch.no_grad():
        calib(x), calib(x)
    with_record = qdqforge.analyze(cfg, model, x, record)
    _check(model, before, extra, "analyze with a record")
    assert [layer.params_source for layer in with_record.layers] == ["record"] * 3
    assert len(report.layers) == 3

    evaluator = FirstTrialFails(x)
    paths = qdqforge.accuracy_based_auto_calibration(
        model, evaluator, cfg, str(tmp_path / "auto.txt"), str(tmp_path / "auto" / "net"), x
    )
    _check(model, before, extra, "accuracy_based_auto_calibration (ranking, 2+ trials)")
    assert paths.qdq.exists() and evaluator.judged >= 2


def _train(qat: nn.Module, x: torch.Tensor) -> None:
    opt = torch.optim.SGD(qat.parameters(), lr=0.1)
    for _ in range(3):
        loss = qat.train()(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
