"""Small naming helpers for export: torch weight names present in a graph, short error text."""

from __future__ import annotations

import re

from torch import nn

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def torch_names(model: nn.Module, initializers: set[str]) -> tuple[list[str], list[str]]:
    """(parameter names, persistent buffer names) of ``model`` that are graph initializers."""
    parameters = [name for name, _ in model.named_parameters() if name in initializers]
    buffers = []
    for prefix, module in model.named_modules():
        for name, value in module._buffers.items():
            full = f"{prefix}.{name}" if prefix else name
            persistent = name not in module._non_persistent_buffers_set
            if value is not None and persistent and full in initializers:
                buffers.append(full)
    return parameters, buffers


def describe_error(error: BaseException) -> str:
    """``Type: first meaningful line``; dynamo's errors bury the cause under a banner."""
    text = _ANSI.sub("", str(error))
    cause = error.__cause__
    if "Exception summary" in text and cause is not None:
        text = _ANSI.sub("", str(cause))
        error = cause
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(error).__name__}: {line[:300]}"
