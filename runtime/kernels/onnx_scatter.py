"""Run-time helpers for ONNX's scatter and prefix-sum ops (out of place, differentiable).

ScatterND (``k = indices.shape[-1]``): ``out = copy(data)``; for every index tuple ``i`` in
``indices[..., :]``, ``out[i[0], ..., i[k-1]] (op)= updates[...]``, ``op`` = assign, add, mul, max,
min (``reduction``). The first ``k`` dims of ``data`` are flattened to one, the tuples become
linear row numbers and the update is one ``index_put`` / ``index_reduce`` on that view.

CumSum: ``y[j] = sum_{i <= j} x[i]`` along ``axis``; ``exclusive`` drops ``x[j]`` itself,
``reverse`` sums from the end.
"""

from __future__ import annotations

import math

import torch

_REDUCE = {"mul": "prod", "max": "amax", "min": "amin"}


def scatter_nd(
    data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor, reduction: str = "none"
) -> torch.Tensor:
    """ONNX ScatterND (negative indices wrap, as in ONNX)."""
    k = indices.shape[-1]
    rows = math.prod(data.shape[:k])
    flat = data.reshape(rows, *data.shape[k:])
    index = indices.long().reshape(-1, k)
    sizes = torch.tensor(data.shape[:k], device=index.device)
    index = torch.where(index < 0, index + sizes, index)
    strides = torch.tensor(
        [math.prod(data.shape[i + 1 : k]) for i in range(k)], device=index.device
    )
    linear = (index * strides).sum(-1)
    values = updates.reshape(-1, *data.shape[k:]).to(data.dtype)
    if reduction in ("none", "add"):
        out = flat.index_put((linear,), values, accumulate=reduction == "add")
    else:
        out = flat.index_reduce(0, linear, values, _REDUCE[reduction], include_self=True)
    return out.reshape(data.shape)


def scatter_elements(
    data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor, axis: int, reduction: str
) -> torch.Tensor:
    """ONNX ScatterElements (negative indices wrap)."""
    axis = axis + data.dim() if axis < 0 else axis
    index = indices.long()
    index = torch.where(index < 0, index + data.shape[axis], index)
    values = updates.to(data.dtype)
    if reduction == "none":
        return data.scatter(axis, index, values)
    reduce = {"add": "sum", **_REDUCE}[reduction]
    return data.scatter_reduce(axis, index, values, reduce, include_self=True)


def cumsum(x: torch.Tensor, axis, exclusive: int = 0, reverse: int = 0) -> torch.Tensor:
    """ONNX CumSum; ``axis`` an int or a 0-d/1-element tensor."""
    axis = int(axis.reshape(-1)[0]) if isinstance(axis, torch.Tensor) else int(axis)
    if reverse:
        x = x.flip(axis)
    y = torch.cumsum(x, axis, dtype=x.dtype)
    if exclusive:  # shift by one (not y - x: exact for floats too)
        zero = torch.zeros_like(y.narrow(axis, 0, 1))
        y = torch.cat([zero, y.narrow(axis, 0, y.shape[axis] - 1)], axis)
    return y.flip(axis) if reverse else y
