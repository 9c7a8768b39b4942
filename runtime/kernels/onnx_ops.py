"""Run-time helpers for ONNX semantics torch lacks as one call (used only on dynamic paths).

Each is a plain module-level function so fx code that calls it stays picklable and printable.
"""

from __future__ import annotations

import math

import torch


def trunc_div(a, b):
    """Integer division rounding toward zero (C semantics), on ints or tensors."""
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return torch.div(a, b, rounding_mode="trunc")


def onnx_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ONNX Div when the dtype is unknown at build time."""
    if a.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def onnx_reshape(x: torch.Tensor, shape, allowzero: int = 0) -> torch.Tensor:
    """Reshape with ONNX's 0 entries (copy the input dim unless ``allowzero``)."""
    dims = shape.tolist() if isinstance(shape, torch.Tensor) else list(shape)
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def onnx_flatten(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Flatten to 2-D around ``axis`` (works on rank 0/1 input, unlike ``torch.flatten``)."""
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def onnx_expand(x: torch.Tensor, shape) -> torch.Tensor:
    """Expand with bidirectional broadcasting (the target may hold 1 where x is larger)."""
    dims = shape.tolist() if isinstance(shape, torch.Tensor) else list(shape)
    return x.expand(torch.broadcast_shapes(x.shape, tuple(int(d) for d in dims)))


def onnx_slice(x: torch.Tensor, starts, ends, axes, steps) -> torch.Tensor:
    """Slice with run-time starts/ends/axes/steps, negative steps included."""
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        x = slice_axis(x, axis, start, end, step)
    return x


def slice_axis(x: torch.Tensor, axis: int, start: int, end: int, step: int) -> torch.Tensor:
    """One ONNX slice along ``axis``; negative steps go through ``flip``."""
    axis = axis + x.dim() if axis < 0 else axis
    if step > 0:
        index = [slice(None)] * axis + [slice(start, end, step)]
        return x[tuple(index)]
    size = x.shape[axis]
    start = min(max(start + size if start < 0 else start, -1), size - 1)
    end = min(max(end + size if end < 0 else end, -1), size - 1)
    indices = list(range(start, end, step))
    return x.index_select(axis, torch.tensor(indices, dtype=torch.long, device=x.device))


def reverse_dims(x: torch.Tensor) -> torch.Tensor:
    """Transpose without ``perm``: reverse every dim."""
    return x.permute(*range(x.dim() - 1, -1, -1))


def shape_tensor(x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
    """ONNX Shape of ``x`` as an int64 tensor on x's device."""
    return torch.tensor(x.shape[start:end], dtype=torch.int64, device=x.device)


def _ints(value) -> list[int]:
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


def softmax_2d(x: torch.Tensor, axis: int, log: bool = False) -> torch.Tensor:
    """Softmax of opsets < 13: over all dims from ``axis`` on, as one flattened dim."""
    axis = axis + x.dim() if axis < 0 else axis
    flat = x.reshape(math.prod(x.shape[:axis]), -1)
    out = torch.log_softmax(flat, 1) if log else torch.softmax(flat, 1)
    return out.reshape(x.shape)


def same_pad(x: torch.Tensor, kernel, strides, dilations, upper: bool, value: float = 0.0):
    """Pad ``x`` for auto_pad SAME_UPPER / SAME_LOWER (output size ceil(in / stride))."""
    n = len(kernel)
    pads: list[int] = []
    for i in reversed(range(n)):
        size = x.shape[x.dim() - n + i]
        out = -(-size // strides[i])
        total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
        small = total // 2
        pads += [small, total - small] if upper else [total - small, small]
    return torch.nn.functional.pad(x, pads, "constant", value)


def wrap_negative(index: torch.Tensor, data: torch.Tensor, axis: int) -> torch.Tensor:
    """ONNX negative indices along ``axis`` made non-negative (torch.gather needs that)."""
    index = index.long()
    return torch.where(index < 0, index + data.shape[axis], index)


def gather_nd(data: torch.Tensor, indices: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """ONNX GatherND: index tuples in the last dim of ``indices``, after ``batch_dims`` dims."""
    k = indices.shape[-1]
    batch = data.shape[:batch_dims]
    count = math.prod(batch)
    flat = data.reshape(count, *data.shape[batch_dims:])
    index = indices.long().reshape(count, -1, k)
    sizes = torch.tensor(flat.shape[1 : k + 1], device=index.device)
    index = torch.where(index < 0, index + sizes, index)
    rows = torch.arange(count, device=index.device).unsqueeze(1)
    picked = flat[(rows, *index.unbind(-1))]
    return picked.reshape(*indices.shape[:-1], *data.shape[batch_dims + k :])


def layer_norm_from(x: torch.Tensor, axis: int, weight, bias, eps: float) -> torch.Tensor:
    """ONNX LayerNormalization over dims ``axis..`` read at run time; the scale and bias
    broadcast (they may be smaller than the normalized shape)."""
    y = torch.nn.functional.layer_norm(x, x.shape[axis:], None, None, eps)
    y = y * weight
    return y if bias is None else y + bias
