"""Parameter store: every ONNX initializer read at run time becomes ONE torch tensor.

Dedup is keyed by the ONNX value name, so a shared initializer stays one tensor and weight tying
survives. The tensor lives at a module path derived from its name (``layer1.0.conv1.weight`` ->
submodule ``layer1.0.conv1``, attribute ``weight``), so the reimported ``state_dict`` keys are the
original torch keys. Names that are not dotted identifiers (``onnx::Conv_12``), and every anonymous
constant, go sanitized and uniquified into the flat container :data:`FLAT`.

Roles (see :func:`decide_roles`): ``param`` -> ``nn.Parameter``; ``buffer`` -> persistent buffer;
``const`` -> non-persistent buffer (never in ``state_dict``).
"""

from __future__ import annotations

import keyword
import re
import warnings
from enum import Enum

import numpy as np
import torch
from torch import nn

from qdqforge.runtime.modules.namespace import Namespace

FLAT = "onnx_initializers"
_ATOM = re.compile(r"^[A-Za-z0-9_]+$")


class Role(str, Enum):
    PARAM = "param"
    BUFFER = "buffer"
    CONST = "const"


class ParameterStore:
    """Registers tensors on ``root`` and remembers ONNX name -> attribute path."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.mapping: dict[str, str] = {}
        self._taken: set[str] = set()

    def add(self, onnx_name: str, array: np.ndarray | torch.Tensor, role: Role) -> str:
        """Register ``onnx_name`` once (later calls return the same path)."""
        if onnx_name in self.mapping:
            return self.mapping[onnx_name]
        tensor = array if isinstance(array, torch.Tensor) else _to_tensor(array)
        if role is Role.PARAM and not tensor.is_floating_point():
            role = Role.BUFFER
        path = self._place(onnx_name, flat=role is Role.CONST)
        owner, leaf = self.owner(path)
        if role is Role.PARAM:
            owner.register_parameter(leaf, nn.Parameter(tensor))
        else:
            owner.register_buffer(leaf, tensor, persistent=role is Role.BUFFER)
        self.mapping[onnx_name] = path
        self._taken.add(path)
        return path

    def alias(self, name: str, target: str) -> str | None:
        """Register the tensor of ONNX initializer ``target`` again at torch name ``name`` (a
        tied weight's other state_dict key): the same object, so it stays one tensor."""
        path = self.mapping.get(target)
        if path is None or not all(_valid_atom(a) for a in name.split(".")):
            return None
        if not self._free(name.split(".")):
            return None
        owner, leaf = self.owner(path)
        tensor = getattr(owner, leaf)
        new_owner, new_leaf = self.owner(name)
        if isinstance(tensor, nn.Parameter):
            new_owner.register_parameter(new_leaf, tensor)
        else:
            persistent = leaf not in owner._non_persistent_buffers_set
            new_owner.register_buffer(new_leaf, tensor, persistent=persistent)
        self._taken.add(name)
        return name

    def _place(self, name: str, flat: bool) -> str:
        atoms = name.split(".")
        if not flat and all(_valid_atom(a) for a in atoms) and self._free(atoms):
            return name
        base = re.sub(r"\W", "_", name) or "value"
        base = f"_{base}" if base[0].isdigit() or keyword.iskeyword(base) else base
        candidate, n = base, 0
        while not self._free([FLAT, candidate]):
            n += 1
            candidate = f"{base}_{n}"
        return f"{FLAT}.{candidate}"

    def _free(self, atoms: list[str]) -> bool:
        module: nn.Module | None = self.root
        for atom in atoms[:-1]:
            child = module._modules.get(atom) if module is not None else None
            if child is None and module is not None and hasattr(module, atom):
                return False  # a tensor or a torch attribute of that name
            module = child
        return module is None or not hasattr(module, atoms[-1])

    def owner(self, path: str) -> tuple[nn.Module, str]:
        """The module holding the last atom of ``path`` (namespaces created on the way), and it."""
        module = self.root
        *prefix, leaf = path.split(".")
        for atom in prefix:
            if atom not in module._modules:
                module.add_module(atom, Namespace())
            module = module._modules[atom]
        return module, leaf


def _valid_atom(atom: str) -> bool:
    return bool(_ATOM.match(atom)) and not keyword.iskeyword(atom)


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a torch tensor sharing its memory (a copy only when torch cannot share it:
    read-only or not C-contiguous)."""
    if array.flags.writeable and array.flags.c_contiguous and array.dtype.kind in "biuf":
        return torch.from_numpy(array)
    return _to_tensor(array)


def reading_tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor over its own memory, for code that only reads it: a read-only
    array too (a view of the user's weights, ``front.export.cache_weights``), without the copy
    :func:`shared_tensor` makes of it. torch has no read-only tensors and warns when it wraps
    one; the caller promises not to write, so the warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return torch.from_numpy(array)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"initializer dtype {array.dtype} has no torch equivalent")
    return torch.from_numpy(np.array(array, copy=True, order="C"))  # keeps 0-d arrays 0-d
