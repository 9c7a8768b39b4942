"""What an export depends on, as bytes: the key of :mod:`qdqforge.front.export.cache`.

* :func:`model_fingerprint`: a SHA-256 of the model's whole reachable state and code
  (:mod:`.fingerprint_walk`: module tree, parameters and buffers by content, every instance
  attribute, hooks, ``training`` flags, the code of its classes and functions) plus torch's
  global module hooks and default dtype. It reads the model and never keeps or changes it.
* :func:`input_signature`: count, shape, dtype and device type of each input.
* :func:`input_values`: a SHA-256 of the inputs' values, for graphs that may depend on them.

Not covered (documented in the README): state the model's code reads only through attributes of
imported modules (``somelib.FLAG``), or through library code's module globals, files and the
environment. ``QDQFORGE_EXPORT_CACHE=0`` turns the cache off for models that do that.
"""

from __future__ import annotations

import torch
import torch.nn.modules.module as module_globals
from torch import nn

from qdqforge.front.export.fingerprint_kinds import UncacheableError, tensor_bytes
from qdqforge.front.export.fingerprint_walk import Walker

__all__ = [
    "UncacheableError",
    "input_signature",
    "input_values",
    "model_fingerprint",
    "weight_bytes",
]

_GLOBAL_HOOKS = (
    "_global_forward_pre_hooks",
    "_global_forward_hooks",
    "_global_forward_hooks_with_kwargs",
    "_global_forward_hooks_always_called",
    "_global_backward_pre_hooks",
    "_global_backward_hooks",
    "_global_is_full_backward_hook",
)


def model_fingerprint(model: nn.Module) -> bytes:
    """SHA-256 of everything :func:`qdqforge.export` of ``model`` can depend on.

    Raises:
        UncacheableError: the model holds state the walk cannot read (message: where).
    """
    walker = Walker()
    walker.text(b"V", f"{torch.__version__}:{torch.get_default_dtype()}")
    for name in _GLOBAL_HOOKS:
        walker.named(name, getattr(module_globals, name, None))
    walker.named("model", model)
    return walker.digest()


def input_signature(args: tuple[torch.Tensor, ...]) -> str:
    """``(shape, dtype, device type, requires_grad)`` of each positional input."""
    return repr([(tuple(a.shape), a.dtype, a.device.type, a.requires_grad) for a in args])


def input_values(args: tuple[torch.Tensor, ...]) -> bytes:
    """SHA-256 of the inputs' values (with their signature)."""
    walker = Walker()
    walker.text(b"U", input_signature(args))
    for arg in args:
        walker.put(b"u", tensor_bytes(arg))
    return walker.digest()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers (each tensor once)."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())
