"""Child-module mirrors stay in sync with ``_modules`` through every way of changing them."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn

from qdqforge.runtime import reimport
from qdqforge.runtime.modules.namespace import Namespace
from tests.helpers.runtime_graphs import TinyNet, tiny_net_onnx


def test_mirror_follows_add_replace_delete():
    ns = Namespace()
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    ns.add_module("a", first)
    assert ns.__dict__["a"] is first
    ns.a = second
    assert ns.__dict__["a"] is second and ns._modules["a"] is second
    ns.a = None
    assert ns.a is None
    ns.register_module("a", first)
    del ns.a
    assert "a" not in ns.__dict__ and "a" not in ns._modules


def test_mirror_dropped_when_name_becomes_parameter():
    ns = Namespace()
    ns.add_module("w", nn.Linear(1, 1))
    ns.w = nn.Parameter(torch.ones(1))
    assert isinstance(ns.w, nn.Parameter) and "w" not in ns._modules


def test_pickle_and_deepcopy_keep_mirrors_consistent():
    ns = Namespace()
    ns.add_module("inner", Namespace())
    ns.inner.add_module("lin", nn.Linear(2, 2))
    for clone in (copy.deepcopy(ns), pickle.loads(pickle.dumps(ns))):
        assert clone.inner is clone._modules["inner"]
        assert clone.inner.lin is clone.inner._modules["lin"]
        assert clone.inner.lin is not ns.inner.lin


def test_reimported_module_swaps_submodule_visibly():
    torch.manual_seed(0)
    module = reimport(tiny_net_onnx(TinyNet())).eval()
    x = torch.randn(2, 3, 5, 5)
    before = module(x)
    replacement = copy.deepcopy(module.fc)
    with torch.no_grad():
        replacement.weight.mul_(2)
    module.fc = replacement
    assert module.fc is replacement
    assert not torch.allclose(module(x), before)
    clone = copy.deepcopy(module)
    assert clone.fc is clone._modules["fc"] and clone.fc is not replacement


def test_repr_lists_tensor_shapes():
    module = reimport(tiny_net_onnx(TinyNet()))
    assert "(fc): Namespace(weight=[6, 100], bias=[6])" in repr(module)
