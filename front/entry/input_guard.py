"""Check the batches fed to a module qdqforge returned against the inputs it was exported with.

The calibration modules (and the QAT model) run a graph exported from ``input_data``: it takes
as many positional tensors, each of the same dtype, rank and non-batch dimensions (only the batch
axis is dynamic), on the device of the module's weights. Without this check a wrong batch fails
deep inside a converter with a torch RuntimeError, or, for a changed non-batch dimension,
calibrates a shape the saved ONNX does not have. :class:`InputGuard` is a forward pre-hook that
raises an InputDataError naming the input and what was expected instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from qdqforge.errors import InputDataError


@dataclass(frozen=True)
class InputSpec:
    """What one positional input must look like (dim 0, the batch axis, is free)."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    def describe(self) -> str:
        return str(("N", *self.shape[1:])).replace("'", "")


class InputGuard:
    """Forward pre-hook: refuse batches that differ from the exported ``input_data``."""

    def __init__(self, example: tuple[torch.Tensor, ...]) -> None:
        self.specs = tuple(InputSpec(t.dtype, tuple(t.shape)) for t in example)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if len(args) != len(self.specs):
            raise InputDataError(
                f"the module takes {len(self.specs)} positional input(s), as exported from "
                f"input_data; got {len(args)} inputs"
            )
        device, dtype = _device_and_dtype(module)
        for index, (value, spec) in enumerate(zip(args, self.specs)):
            if dtype is not None and spec.dtype.is_floating_point:
                spec = InputSpec(dtype, spec.shape)  # the module was cast (.half(), .double())
            check_input(index, value, spec, device)


def check_input(index: int, value, spec: InputSpec, device: torch.device | None) -> None:
    """Raise an InputDataError when ``value`` does not match ``spec`` (see module docstring)."""
    if not isinstance(value, torch.Tensor):
        raise InputDataError(
            f"input {index} is a {type(value).__name__}; the module takes the model's positional "
            "inputs as tensors, like model(*input_data)"
        )
    if device is not None and value.device != device:
        raise InputDataError(
            f"input {index} is on {value.device}; the module's weights are on {device}: move the "
            f"batch with .to('{device}')"
        )
    if value.dtype != spec.dtype:
        raise InputDataError(
            f"input {index} has dtype {value.dtype}; the model was exported with {spec.dtype}: "
            f"convert the batch with .to({spec.dtype})"
        )
    if value.dim() != len(spec.shape) or tuple(value.shape[1:]) != spec.shape[1:]:
        raise InputDataError(
            f"input {index} has shape {tuple(value.shape)}; the model was exported with "
            f"{spec.describe()} (only the batch axis N may change)"
        )


def _device_and_dtype(module: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the module's first parameter (or buffer)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device, (tensor.dtype if tensor.is_floating_point() else None)
    return None, None


def guard_inputs(module: nn.Module, example: tuple[torch.Tensor, ...]) -> nn.Module:
    """Move ``module`` to ``example``'s device (the user's model and ``input_data`` on a GPU: the
    returned module calibrates or trains there too; reimport builds it on the CPU) and register
    an :class:`InputGuard` for ``example`` on it; returns ``module``."""
    device = input_device(example)
    if device is not None and device.type != "cpu":
        module.to(device)
    module.register_forward_pre_hook(InputGuard(example))
    return module


def input_device(example: tuple[torch.Tensor, ...]) -> torch.device | None:
    """The one device of ``example``'s tensors; None for none or several."""
    devices = {t.device for t in example if isinstance(t, torch.Tensor)}
    return devices.pop() if len(devices) == 1 else None


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter (or buffer); None without any."""
    return _device_and_dtype(module)[0]
