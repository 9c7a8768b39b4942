"""Recognize and describe exporter failures, and TorchScript traces that baked a branch.

The TorchScript tracer runs the model once and records what happened; ``if x.sum() > 0`` becomes
a constant branch, announced only by a ``TracerWarning`` "Converting a tensor to a Python
boolean". The same warning fires for harmless shape checks (``torch.nn.functional``'s MHA,
transformers' mask helpers), so a trace is refused when the warning comes from the model's own
source files (where its module classes are defined), or from anywhere outside torch when dynamo
already failed on a data-dependent guard (``strict``). Other such warnings are logged.
"""

from __future__ import annotations

import inspect
import logging
import re
import warnings
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

_TORCH_DIR = Path(torch.__file__).resolve().parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class UnsafeTraceError(RuntimeError):
    """The TorchScript trace depends on input values (data-dependent control flow)."""


def check_trace(caught: list[warnings.WarningMessage], model: nn.Module, strict: bool) -> None:
    """Raise UnsafeTraceError for a value-dependent branch; log the other TracerWarnings."""
    own_files, logged = _model_files(model), set()
    for message in caught:
        if not issubclass(message.category, torch.jit.TracerWarning):
            continue
        text, where = str(message.message), f"{message.filename}:{message.lineno}"
        path = _resolve(message.filename)
        inside_torch = path.is_relative_to(_TORCH_DIR)
        if "Python boolean" in text and not inside_torch and (strict or path in own_files):
            raise UnsafeTraceError(
                "the TorchScript trace branched on a tensor value (data-dependent control "
                f"flow) at {where}, so the graph would only be valid for this input: {text}"
            )
        if where not in logged:
            logged.add(where)
            level = logging.DEBUG if inside_torch else logging.WARNING
            log.log(level, "TorchScript trace may not generalize (%s): %s", where, _first(text))


def _first(text: str) -> str:
    return text.split(". ")[0].rstrip(".")


def _model_files(model: nn.Module) -> set[Path]:
    files = set()
    for cls in {type(m) for m in model.modules()}:
        try:
            files.add(_resolve(inspect.getsourcefile(cls) or ""))
        except (TypeError, OSError):  # classes defined in C or interactively
            continue
    return {f for f in files if not f.is_relative_to(_TORCH_DIR)}


def _resolve(filename: str) -> Path:
    return Path(filename).resolve()


def is_data_dependent(error: BaseException) -> bool:
    """True when torch.export failed because control flow depends on tensor values."""
    seen: BaseException | None = error
    for _ in range(8):  # the exporter wraps the guard error a few levels deep
        if seen is None:
            return False
        if "DataDependent" in type(seen).__name__ or "data-dependent" in str(seen)[:4000]:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_error(error: BaseException) -> str:
    """``Type: first meaningful line``; dynamo's errors bury the cause under a banner."""
    text = _ANSI.sub("", str(error))
    cause = error.__cause__
    if "Exception summary" in text and cause is not None:
        text = _ANSI.sub("", str(cause))
        error = cause
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(error).__name__}: {line[:300]}"
