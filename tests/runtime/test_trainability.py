"""The reimported module trains like the torch model it came from."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from qdqforge.runtime import reimport
from tests.helpers.runtime_graphs import TinyNet, tied_onnx, tiny_net_onnx


@pytest.fixture
def pair():
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.5, 0.5)
        model.features[1].running_var.uniform_(0.5, 1.5)
    module = reimport(tiny_net_onnx(model))
    return model, module


def test_state_dict_keys_match_and_load_strictly(pair):
    model, module = pair
    assert module.state_dict().keys() == model.state_dict().keys()
    assert list(dict(module.named_parameters())) == list(dict(model.named_parameters()))
    module.load_state_dict(model.state_dict(), strict=True)
    assert module.get_submodule("features.1").num_batches_tracked.dtype == torch.long


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_outputs_match_torch(pair, mode):
    model, module = pair
    getattr(model, mode)()
    getattr(module, mode)()
    x = torch.randn(3, 3, 5, 5)
    torch.manual_seed(1)
    expected = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-6)


def test_one_sgd_step_matches_torch(pair):
    model, module = pair
    model.train()
    module.train()
    x, target = torch.randn(4, 3, 5, 5), torch.randn(4, 6)
    losses = []
    for net in (model, module):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(2)
        loss = torch.nn.functional.mse_loss(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(module.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter(pair):
    _, module = pair
    module.train()
    module(torch.randn(2, 3, 5, 5)).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_batchnorm_running_stats_update_in_train_only(pair):
    _, module = pair
    bn = module.get_submodule("features.1")
    before = bn.running_mean.clone()
    module.eval()
    module(torch.randn(2, 3, 5, 5))
    torch.testing.assert_close(bn.running_mean, before)
    assert bn.num_batches_tracked.item() == 0
    module.train()
    module(torch.randn(2, 3, 5, 5))
    assert not torch.equal(bn.running_mean, before)
    assert bn.num_batches_tracked.item() == 1


def test_dropout_active_in_train_identity_in_eval(pair):
    _, module = pair
    x = torch.randn(8, 3, 5, 5)
    module.eval()
    torch.testing.assert_close(module(x), module(x))
    module.train()
    torch.manual_seed(0)
    a = module(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, module(x))
    drops = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drops] == [0.5]


def test_shared_initializer_is_one_parameter_and_stays_tied():
    module = reimport(tied_onnx())
    params = list(module.parameters())
    assert len(params) == 1
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    module(torch.randn(3, 4)).pow(2).sum().backward()
    opt.step()
    # both MatMuls read the updated tensor: recompute by hand with the one weight
    x = torch.randn(2, 4)
    w = params[0].detach()
    torch.testing.assert_close(module(x), x @ w @ w)


def test_state_dict_pickles(pair):
    model, module = pair
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    restored = torch.load(buffer)
    module.load_state_dict(restored, strict=True)
    assert pickle.loads(pickle.dumps(module.state_dict())).keys() == model.state_dict().keys()


def test_deepcopy_is_independent_and_complete(pair):
    _, module = pair
    clone = copy.deepcopy(module)
    assert clone.state_dict().keys() == module.state_dict().keys()
    assert clone.onnx_mapping == module.onnx_mapping
    x = torch.randn(2, 3, 5, 5)
    module.eval()
    clone.eval()
    torch.testing.assert_close(clone(x), module(x))
    with torch.no_grad():
        clone.fc.weight.add_(1.0)
    assert not torch.allclose(clone(x), module(x))


def test_half_no_grad_and_to(pair):
    _, module = pair
    module.eval().to("cpu")
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        y = module(x)
    assert not y.requires_grad
    half = copy.deepcopy(module).half()
    torch.testing.assert_close(half(x.half()).float(), y, rtol=2e-2, atol=2e-2)


def test_fx_printing(pair):
    _, module = pair
    assert "conv2d" in module.code
    assert "onnx_ops" in str(module.graph)
    assert "BatchNormOp" in repr(module)
