"""Run-time helpers for ONNX sequence ops; a sequence is a Python list of tensors in the fx code.

SplitToSequence(x, split?): without ``split``, size-1 pieces along ``axis`` (squeezed unless
``keepdims``); a scalar ``split`` cuts pieces of that length (the last may be shorter); a 1-D
``split`` gives each piece's length.
"""

from __future__ import annotations

import torch


def split_to_sequence(x: torch.Tensor, split, axis: int, keepdims: int) -> list[torch.Tensor]:
    """ONNX SplitToSequence; ``split`` is None, an int, a list of ints or a tensor."""
    if split is None:
        parts = torch.split(x, 1, axis)
        return list(parts) if keepdims else [p.squeeze(axis) for p in parts]
    if isinstance(split, torch.Tensor):
        split = int(split) if split.dim() == 0 else [int(s) for s in split.tolist()]
    return list(torch.split(x, split, axis))


def sequence_construct(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """ONNX SequenceConstruct (and SequenceEmpty with no argument)."""
    return list(tensors)


def sequence_at(sequence: list[torch.Tensor], position) -> torch.Tensor:
    """ONNX SequenceAt with a run-time position (negative counts from the end)."""
    return sequence[int(position)]


def sequence_length(sequence: list[torch.Tensor]) -> torch.Tensor:
    """ONNX SequenceLength: an int64 scalar."""
    return torch.tensor(len(sequence), dtype=torch.int64)


def sequence_insert(sequence: list[torch.Tensor], tensor: torch.Tensor, position=None) -> list:
    """ONNX SequenceInsert (at the end without ``position``); a new list."""
    out = list(sequence)
    out.insert(len(out) if position is None else int(position), tensor)
    return out


def sequence_erase(sequence: list[torch.Tensor], position=None) -> list[torch.Tensor]:
    """ONNX SequenceErase (the last element without ``position``); a new list."""
    out = list(sequence)
    del out[-1 if position is None else int(position)]
    return out
