"""The export cache's key: it changes with everything an export depends on, and nothing else.

Each change case mutates a fresh model and asserts the fingerprint moved; each same case does
something that leaves the export unchanged and asserts it did not. Exports themselves are
tested in test_export_cache.py.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qdqforge.front.export.fingerprint import (
    UncacheableError,
    input_signature,
    input_values,
    model_fingerprint,
)

SCALE = 1.0  # read by Net.forward: a module global the fingerprint must follow


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)
        self.use_residual = True

    def forward(self, x):
        y = F.adaptive_avg_pool2d(self.block(x), 1).flatten(1)
        y = self.fc2(self.fc1(y)) * SCALE
        return y + 1 if self.use_residual else y


def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def _set_state_dict(model: Net) -> None:
    state = model.state_dict()
    state["fc1.bias"] = state["fc1.bias"] + 1
    model.load_state_dict(state)


def _numpy_edit(model: Net) -> None:
    model.fc1.weight.detach().numpy()[0, 0] += 1.0


def _tie(model: Net) -> None:
    model.fc2.weight = model.fc1.weight


def _monkeypatch_forward(model: Net) -> None:
    model.block.act.forward = lambda x: x.clamp(min=0.0, max=6.0)


def _global_hook(model: Net):
    return nn.modules.module.register_module_forward_hook(lambda m, i, o: None)


CHANGES = {
    "weight in place through .data": lambda m: m.fc1.weight.data.add_(1e-3),
    "one weight element through a numpy view": _numpy_edit,
    "load_state_dict": _set_state_dict,
    "bias replaced by another Parameter": lambda m: setattr(
        m.fc2, "bias", nn.Parameter(m.fc2.bias.detach() * 2)
    ),
    "weight tying": _tie,
    "BN running_mean": lambda m: m.block.bn.running_mean.add_(0.5),
    "BN num_batches_tracked (int buffer)": lambda m: m.block.bn.num_batches_tracked.add_(1),
    "new buffer": lambda m: m.register_buffer("extra", torch.zeros(2)),
    "buffer made non-persistent": lambda m: m.block.bn._non_persistent_buffers_set.add("bias"),
    "submodule replaced": lambda m: setattr(m.block, "act", nn.GELU()),
    "submodule added": lambda m: m.add_module("head", nn.Linear(4, 2)),
    "conv stride attribute": lambda m: setattr(m.block.conv, "stride", (2, 2)),
    "plain attribute read by forward": lambda m: setattr(m, "use_residual", False),
    "new plain attribute": lambda m: setattr(m, "note", "x"),
    "forward hook": lambda m: m.fc1.register_forward_hook(lambda mod, i, o: o * 2),
    "forward pre-hook": lambda m: m.register_forward_pre_hook(lambda mod, i: None),
    "train mode": lambda m: m.train(),
    "one submodule's train mode": lambda m: m.block.bn.train(),
    "requires_grad": lambda m: m.fc1.weight.requires_grad_(False),
    "instance forward monkeypatched": _monkeypatch_forward,
    "weight dtype": lambda m: m.fc1.half(),
}


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
def test_fingerprint_changes(change):
    model = net()
    before = model_fingerprint(model)
    change(model)
    assert model_fingerprint(model) != before


def test_global_module_hook_changes_it():
    model = net()
    before = model_fingerprint(model)
    handle = _global_hook(model)
    try:
        assert model_fingerprint(model) != before
    finally:
        handle.remove()
    assert model_fingerprint(model) == before


def test_module_global_read_by_forward_changes_it(monkeypatch):
    model = net()
    before = model_fingerprint(model)
    monkeypatch.setitem(globals(), "SCALE", 2.0)
    assert model_fingerprint(model) != before


def test_class_method_patched_changes_it(monkeypatch):
    model = net()
    before = model_fingerprint(model)
    monkeypatch.setattr(Block, "forward", lambda self, x: self.conv(x))
    assert model_fingerprint(model) != before


def test_closure_value_changes_it():
    def make(offset):
        def forward(x):
            return x + offset

        return forward

    model = net()
    model.fc2.forward = make(1.0)
    before = model_fingerprint(model)
    model.fc2.forward = make(2.0)
    assert model_fingerprint(model) != before


def test_default_dtype_changes_it():
    model = net()
    before = model_fingerprint(model)
    torch.set_default_dtype(torch.float64)
    try:
        assert model_fingerprint(model) != before
    finally:
        torch.set_default_dtype(torch.float32)


def _eval_forward(model: Net) -> None:
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))


def _same_values_new_tensor(model: Net) -> None:
    model.fc1.weight.data = model.fc1.weight.data.clone()


SAME = {
    "an eval forward": _eval_forward,
    "eval() on an eval model": lambda m: m.eval(),
    "state_dict() and named_modules()": lambda m: (m.state_dict(), list(m.named_modules())),
    "weight storage replaced by equal values": _same_values_new_tensor,
    "equal values written in place": lambda m: m.fc1.weight.data.mul_(1.0),
    "a hook added and removed": lambda m: m.fc1.register_forward_hook(lambda *a: None).remove(),
}


@pytest.mark.parametrize("action", list(SAME.values()), ids=list(SAME))
def test_fingerprint_unchanged(action):
    model = net()
    before = model_fingerprint(model)
    action(model)
    assert model_fingerprint(model) == before


def test_other_references_to_its_code_leave_it():
    """marshal 3+ writes a back-reference for an object referenced more than once at the time:
    the same code gave other bytes while something else (a profiler) held its constants."""
    model = net()
    before = model_fingerprint(model)
    codes = [Net.forward.__code__, Block.forward.__code__, nn.Module._call_impl.__code__]
    held = [part for code in codes for part in (code, *code.co_consts, *code.co_names)] * 2
    assert model_fingerprint(model) == before
    assert held


def test_deep_copy_has_the_same_fingerprint():
    model = net()
    assert model_fingerprint(copy.deepcopy(model)) == model_fingerprint(model)


def test_tied_and_untied_equal_weights_differ():
    tied, untied = net(), net()
    untied.fc2.weight = nn.Parameter(untied.fc1.weight.detach().clone())
    tied.fc2.weight = tied.fc1.weight
    assert model_fingerprint(tied) != model_fingerprint(untied)


def test_locks_and_loggers_are_taken_by_type():
    model, other = net(), net()
    model.lock, other.lock = threading.Lock(), threading.Lock()
    assert model_fingerprint(model) == model_fingerprint(other)


def test_unreadable_state_is_uncacheable_and_named():
    model = net()
    model.block.handle = object()
    with pytest.raises(UncacheableError, match=r"model\._modules\.block\.handle"):
        model_fingerprint(model)


def test_fingerprint_reads_without_changing_the_model():
    model = net()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model_fingerprint(model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_input_signature_and_values():
    x = torch.randn(2, 3, 8, 8)
    assert input_signature((x,)) == input_signature((torch.randn(2, 3, 8, 8),))
    for other in (torch.randn(3, 3, 8, 8), x.double(), x[:, :2]):
        assert input_signature((other,)) != input_signature((x,))
    assert input_signature((x, x)) != input_signature((x,))
    assert input_values((x,)) == input_values((x.clone(),))
    assert input_values((x,)) != input_values((x + 1e-6,))


def test_copying_the_model_leaves_its_fingerprint():
    class Settings:  # a class never copied before: copyreg caches __slotnames__ on it
        def __init__(self) -> None:
            self.scale = 2.0

    model = net()
    model.settings = Settings()  # a plain config object, as transformers models hold
    before = model_fingerprint(model)
    copy.deepcopy(model)  # what every export does first
    assert "__slotnames__" in vars(Settings) and model_fingerprint(model) == before


class Slotted:
    __slots__ = ("__hidden", "gain")

    def __init__(self, gain: float) -> None:
        self.gain = gain


def test_slotted_attributes_set_unset_and_private():
    model = net()
    model.settings = Slotted(1.0)
    before = model_fingerprint(model)
    model.settings.gain = 2.0
    changed = model_fingerprint(model)
    model.settings._Slotted__hidden = 3  # a private slot, set for the first time
    assert len({before, changed, model_fingerprint(model)}) == 3
