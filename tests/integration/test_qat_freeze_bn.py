"""``qdqforge.freeze_bn_stats`` on a QAT model: training forwards normalize with the running
statistics (so equal an eval forward), leave them unchanged, still train gamma/beta, survive
``train()``, and undo with ``freeze=False``; the float model is refused with a typed error."""

from __future__ import annotations

import pytest
import torch

import qdqforge
from qdqforge.errors import ModelError
from tests.helpers.qat_flow import train, write_config
from tests.helpers.torch_models import build


@pytest.fixture()
def qat(tmp_path):
    model, (x,) = build("resnet")
    cfg = write_config(tmp_path, model, x)
    module = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp_path / "r.txt"), x)
    train(module, [torch.randn_like(x) for _ in range(2)], steps=2)  # clips initialized
    return module, model


def _running_stats(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def test_frozen_training_forward_equals_eval_and_keeps_stats(qat):
    module, _ = qat
    x = torch.randn(4, 3, 16, 16)
    assert qdqforge.freeze_bn_stats(module) > 0
    module.eval()
    with torch.no_grad():
        expected = module(x)
    before = _running_stats(module)
    module.train()
    for sub in module.modules():  # the model's Dropout is the other train/eval difference
        if isinstance(sub, torch.nn.Dropout):
            sub.eval()
    got = module(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for key, value in _running_stats(module).items():
        assert torch.equal(value, before[key]), key
    got.square().mean().backward()
    bn_grads = [p.grad for n, p in module.named_parameters() if "bn" in n]
    assert bn_grads and all(g is not None and g.abs().sum() > 0 for g in bn_grads)


def test_unfreeze_restores_batch_statistics(qat):
    module, _ = qat
    qdqforge.freeze_bn_stats(module)
    qdqforge.freeze_bn_stats(module, freeze=False)
    before = _running_stats(module)
    module.train()
    with torch.no_grad():
        module(torch.randn(4, 3, 16, 16) * 3 + 1)
    changed = [k for k, v in _running_stats(module).items() if not torch.equal(v, before[k])]
    assert changed


def test_float_model_is_refused(qat):
    _, model = qat
    with pytest.raises(ModelError, match=r"torch\.nn BatchNorm"):
        qdqforge.freeze_bn_stats(model)
