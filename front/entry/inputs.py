"""Normalize the ``input_data`` argument every public qdqforge API accepts.

``input_data`` is a tensor or a tuple of tensors, like the positional arguments of
``model(*input_data)``. Lists, dicts and ``None`` are refused on purpose: a list could mean "one
input that is a list" or "several inputs", and guessing wrong exports a different graph.
"""

from __future__ import annotations

import torch

from qdqforge.errors import InputDataError

EXPECTED = "a torch.Tensor or a tuple of torch.Tensor (one per positional model input)"


def normalize_input_data(input_data: object) -> tuple[torch.Tensor, ...]:
    """Return ``input_data`` as a tuple of tensors.

    Args:
        input_data: a tensor (means ``(tensor,)``) or a non-empty tuple of tensors.

    Returns:
        The positional model inputs as a tuple.

    Raises:
        InputDataError: (also a ``TypeError``) for anything else; the message says what was
            received and what is expected.
    """
    if isinstance(input_data, torch.Tensor):
        return (input_data,)
    if not isinstance(input_data, tuple):
        raise InputDataError(
            f"input_data must be {EXPECTED}; received {_describe(input_data)}" + _hint(input_data)
        )
    if not input_data:
        raise InputDataError(f"input_data must be {EXPECTED}; received an empty tuple")
    for position, item in enumerate(input_data):
        if not isinstance(item, torch.Tensor):
            raise InputDataError(
                f"input_data must be {EXPECTED}; received a tuple of {len(input_data)} whose "
                f"item {position} is {_describe(item)}"
            )
    return input_data


def _describe(value: object) -> str:
    """``None``, ``list of 2``, ``dict with keys ['a']`` or ``int`` style descriptions."""
    if value is None:
        return "None"
    name = type(value).__qualname__
    if isinstance(value, dict):
        return f"{name} with keys {sorted(map(str, value))[:5]}"
    if isinstance(value, (list, tuple)):
        return f"{name} of {len(value)}"
    return f"{name} ({value!r})" if isinstance(value, (int, float, str, bool)) else name


def _hint(value: object) -> str:
    if isinstance(value, list):
        return "; pass tuple(input_data) if these are separate model inputs"
    return ""
