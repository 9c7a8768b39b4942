"""Child modules mirrored in ``__dict__``: ``self.layer1`` is a dict hit, not ``__getattr__``.

fx code reads every tensor through its attribute path (``self.layer1.0.conv1.weight``); with
plain modules each hop is a call to ``nn.Module.__getattr__``, which alone made a reimported
MobileNet's forward ~7% slower than the original. Mirroring *child modules* (never tensors:
``_apply`` and ``torch.func`` replace those in ``_parameters``/``_buffers`` directly) removes that
cost. Every path that adds, replaces or removes a child goes through the overrides below.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def sync_child(module: nn.Module, name: str) -> None:
    """Make ``module.__dict__[name]`` mirror ``module._modules[name]`` (or drop a stale one)."""
    modules = module.__dict__.get("_modules")
    if modules is None:
        return
    if name in modules:
        module.__dict__[name] = modules[name]
    elif isinstance(module.__dict__.get(name), nn.Module):
        del module.__dict__[name]


def remirror(module: nn.Module) -> None:
    """Rebuild every mirror of ``module`` (after its ``_modules`` dict was replaced)."""
    stale = [k for k, v in module.__dict__.items() if isinstance(v, nn.Module)]
    for name in stale:
        if name not in module._modules:
            del module.__dict__[name]
    for name, child in module._modules.items():
        module.__dict__[name] = child


class FastChildren:
    """Mixin for nn.Module subclasses: keeps child-module mirrors in sync."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        sync_child(self, name)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        sync_child(self, name)

    def add_module(self, name: str, module: nn.Module | None) -> None:
        super().add_module(name, module)
        sync_child(self, name)

    def register_module(self, name: str, module: nn.Module | None) -> None:
        self.add_module(name, module)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        remirror(self)


class Namespace(FastChildren, nn.Module):
    """A plain container on a parameter path (``layer1``, ``layer1.0``); holds no code."""

    def extra_repr(self) -> str:
        tensors = [*self._parameters.items(), *self._buffers.items()]
        return ", ".join(f"{k}={list(v.shape)}" for k, v in tensors if v is not None)
