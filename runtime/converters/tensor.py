"""Indexing and joining: Concat, Split, Slice, Gather, Range, Trilu, Einsum, ArgMax/ArgMin."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from qdqforge.graph import meta
from qdqforge.runtime.converters.constant import torch_dtype
from qdqforge.runtime.kernels.onnx_ops import onnx_slice, slice_axis
from qdqforge.runtime.registry import Emitter, OnnxNode, Sym, converter


@converter("Concat", versions=(4, 11, 13))
def convert_concat(node: OnnxNode, emit: Emitter):
    axis, n = node.attr("axis"), len(node.inputs)
    raws = [emit.raw(i) for i in range(n)]
    if any(isinstance(r, Sym) for r in raws):
        parts = [emit.ints(i) for i in range(n)]
        if all(p is not None for p in parts):  # shape vectors are 1-D, so axis is 0
            return Sym(tuple(item for part in parts for item in part))
    values = [emit.value(i) for i in range(n) if emit.has(i)]
    return emit.call(torch.cat, values, axis)


@converter("Split", versions=(2, 11, 13, 18))
def convert_split(node: OnnxNode, emit: Emitter):
    axis, count = node.attr("axis", 0), len(node.outputs)
    sizes = node.attr("split") or (emit.ints(1) if emit.has(1) else None)
    x = emit.value(0)
    if sizes is not None:
        parts = emit.call(torch.split, x, list(sizes), axis)
    elif node.attr("num_outputs") is None and _static_dim(emit, axis) is not None:
        parts = emit.call(torch.split, x, _static_dim(emit, axis) // count, axis)
    else:
        parts = emit.call(torch.chunk, x, count, axis)
    return [emit.getitem(parts, i) for i in range(count)]


def _static_dim(emit: Emitter, axis: int) -> int | None:
    shape = emit.shape(0)
    return None if shape is None else shape[axis]


@converter("Slice", versions=(1, 10, 11, 13))
def convert_slice(node: OnnxNode, emit: Emitter):
    if emit.opset < 10 or "starts" in node.attrs:
        starts, ends, axes, steps = (node.attr(k) for k in ("starts", "ends", "axes", "steps"))
    else:
        starts, ends, axes, steps = (emit.ints(i) if emit.has(i) else None for i in range(1, 5))
        if (
            (starts is None or ends is None)
            or (emit.has(3) and axes is None)
            or (emit.has(4) and steps is None)
        ):
            tail = [emit.value(i) for i in range(3, 5)]
            return emit.call(onnx_slice, emit.value(0), emit.value(1), emit.value(2), *tail)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    raw = emit.raw(0)
    if isinstance(raw, Sym) and axes in ([0], [-1]):
        return Sym(raw.items[slice(starts[0], ends[0], steps[0])])
    return _slice(emit, emit.value(0), starts, ends, axes, steps)


def _slice(emit: Emitter, x, starts, ends, axes, steps):
    shape = emit.shape(0)
    if (any(a < 0 for a in axes) and shape is None) or any(s < 0 for s in steps):
        for start, end, axis, step in zip(starts, ends, axes, steps):
            x = emit.call(slice_axis, x, axis, start, end, step)
        return x
    rank = len(shape) if shape is not None else max(axes) + 1
    index = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis + rank if axis < 0 else axis] = slice(start, end, step)
    while index and index[-1] == slice(None):
        index.pop()
    return emit.getitem(x, tuple(index))


@converter("Gather", versions=(1, 11, 13))
def convert_gather(node: OnnxNode, emit: Emitter):
    axis, raw, idx = node.attr("axis", 0), emit.raw(0), emit.const(1)
    if isinstance(raw, Sym) and idx is not None:
        picked = tuple(raw.items[int(i)] for i in idx.reshape(-1))
        return Sym(picked, scalar=idx.ndim == 0)
    shape = emit.shape(0)
    if emit.is_param(0) and axis == 0 and shape is not None and len(shape) == 2:
        pad = node.meta.get(meta.PADDING_IDX)  # nn.Embedding(padding_idx): that row never trains
        pad = None if pad is None else int(pad)
        return emit.call(F.embedding, emit.value(1), emit.value(0), pad)
    x = emit.value(0)
    if idx is not None and idx.ndim == 0:
        return emit.method("select", x, axis, int(idx))
    rank = len(shape) if shape is not None else None
    if axis < 0 and rank is None:
        return emit.call(torch.index_select, x, axis, emit.value(1))  # 1-D indices only
    axis = axis + rank if axis < 0 else axis
    return emit.getitem(x, (*[slice(None)] * axis, emit.value(1)))


@converter("Range", versions=(11,))
def convert_range(node: OnnxNode, emit: Emitter):
    dtype = torch_dtype(emit.dtype(0)) if emit.dtype(0) else None
    bounds = [_number(emit, i) for i in range(3)]
    return emit.call(torch.arange, *bounds, dtype=dtype, device=emit.device())


def _number(emit: Emitter, index: int):
    const = emit.const(index)
    if const is not None:
        return const.item()
    if isinstance(emit.raw(index), Sym):
        return emit.ints(index)[0]
    return emit.method("item", emit.value(index))


@converter("Trilu", versions=(14,))
def convert_trilu(node: OnnxNode, emit: Emitter):
    k = emit.ints(1)[0] if emit.has(1) else 0
    fn = torch.triu if node.attr("upper", 1) else torch.tril
    return emit.call(fn, emit.value(0), k)


@converter("Einsum", versions=(12,))
def convert_einsum(node: OnnxNode, emit: Emitter):
    operands = [emit.value(i) for i in range(len(node.inputs))]
    return emit.call(torch.einsum, node.attr("equation"), *operands)


_ARG_EXTREME = {"ArgMax": torch.argmax, "ArgMin": torch.argmin}


@converter("ArgMax", versions=(11, 12, 13))
@converter("ArgMin", versions=(11, 12, 13))
def convert_arg_extreme(node: OnnxNode, emit: Emitter):
    """ArgMax or ArgMin; ``select_last_index`` searches the flipped axis."""
    fn = _ARG_EXTREME[node.op_type]
    axis, keep = node.attr("axis", 0), bool(node.attr("keepdims", 1))
    x = emit.value(0)
    if not node.attr("select_last_index", 0):
        return emit.call(fn, x, axis, keep)
    flipped = emit.call(fn, emit.call(torch.flip, x, [axis]), axis, keep)
    last = emit.call(operator.sub, emit.method("size", x, axis), 1)
    return emit.call(operator.sub, last, flipped)
