"""Which torch parameters and persistent buffers an exported graph holds as initializers.

The exporters keep torch names (``conv1.weight``, ``bn1.running_mean``) when their optimizers are
off; these lists go to the model metadata ``qdqforge.parameters`` / ``qdqforge.buffers`` so later
stages know which initializers are trainable parameters and which are state.
"""

from __future__ import annotations

from torch import nn


def weight_names(model: nn.Module, initializers: set[str]) -> tuple[list[str], list[str]]:
    """(parameter names, persistent buffer names) of ``model`` that are graph initializers.

    Tied weights have several names (``a.weight`` is ``b.weight``); the exporter keeps one of
    them, not necessarily the first, so every alias is looked up.
    """
    named = model.named_parameters(remove_duplicate=False)
    parameters = [name for name, _ in named if name in initializers]
    buffers = []
    for prefix, module in model.named_modules(remove_duplicate=False):
        for name, value in module._buffers.items():
            full = f"{prefix}.{name}" if prefix else name
            persistent = name not in module._non_persistent_buffers_set
            if value is not None and persistent and full in initializers:
                buffers.append(full)
    return parameters, buffers
