"""Shape-level ops: Shape, Size, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Expand, Tile.

Shapes are kept symbolic (:class:`Sym`): static dims from shape inference are ints, dynamic ones
are ``x.size(i)`` fx nodes, so ``Reshape(x, Concat(Shape(x)[0], 128))`` becomes
``x.reshape([x.size(0), 128])`` and never bakes the example batch size.
"""

from __future__ import annotations

import numpy as np
import torch

from qdqforge.errors import ConversionError
from qdqforge.runtime.kernels.onnx_ops import (
    onnx_expand,
    onnx_flatten,
    onnx_reshape,
    reverse_dims,
    shape_tensor,
)
from qdqforge.runtime.registry import Emitter, OnnxNode, Sym, converter


def dim(emit: Emitter, x, shape: tuple | None, i: int):
    """Size of dim ``i``: the static int when inference knows it, else ``x.size(i)``."""
    if shape is not None and shape[i] is not None:
        return shape[i]
    return emit.method("size", x, i)


@converter("Shape", versions=(1, 13, 15, 19, 21))
def convert_shape(node: OnnxNode, emit: Emitter):
    start, end = node.attr("start", 0), node.attr("end")
    raw, shape = emit.raw(0), emit.shape(0)
    if isinstance(raw, np.ndarray):
        return np.array(raw.shape[start:end], dtype=np.int64)
    if shape is None:
        return emit.call(shape_tensor, emit.value(0), start, end)
    picked = range(len(shape))[start:end]
    if all(shape[i] is not None for i in picked):
        return np.array([shape[i] for i in picked], dtype=np.int64)
    x = emit.value(0)
    return Sym(tuple(dim(emit, x, shape, i) for i in picked))


@converter("Size", versions=(1, 13, 19, 21))
def convert_size(node: OnnxNode, emit: Emitter):
    shape = emit.shape(0)
    if shape is not None and None not in shape:
        return np.array(int(np.prod(shape)), dtype=np.int64)
    return Sym((emit.method("numel", emit.value(0)),), scalar=True)


@converter("Reshape", versions=(5, 13, 14, 19, 21))
def convert_reshape(node: OnnxNode, emit: Emitter):
    allowzero = node.attr("allowzero", 0)
    target = emit.ints(1)
    raw = emit.raw(0)
    if isinstance(raw, Sym) and target is not None and len(target) <= 1:
        return Sym(raw.items, scalar=not target)
    x = emit.value(0)
    if target is None:
        return emit.call(onnx_reshape, x, emit.value(1), allowzero)
    if not allowzero:
        shape = emit.shape(0)
        target = [
            dim(emit, x, shape, i) if isinstance(d, int) and d == 0 else d
            for i, d in enumerate(target)
        ]
    return emit.method("reshape", x, target)


@converter("Flatten", versions=(1, 9, 11, 13, 21))
def convert_flatten(node: OnnxNode, emit: Emitter):
    axis, shape = node.attr("axis", 1), emit.shape(0)
    x = emit.value(0)
    if shape is None:
        return emit.call(onnx_flatten, x, axis)
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        return emit.method("reshape", x, 1, -1)
    if axis == rank:
        return emit.method("reshape", x, -1, 1)
    flat = emit.call(torch.flatten, x, axis) if axis < rank - 1 else x
    return emit.call(torch.flatten, flat, 0, axis - 1) if axis > 1 else flat


@converter("Transpose", versions=(1, 13, 21))
def convert_transpose(node: OnnxNode, emit: Emitter):
    perm = node.attr("perm")
    if isinstance(emit.raw(0), Sym):
        return emit.raw(0)
    if perm is None:
        shape = emit.shape(0)
        if shape is None:
            return emit.call(reverse_dims, emit.value(0))
        perm = list(range(len(shape)))[::-1]
    return emit.method("permute", emit.value(0), list(perm))


def axes_of(node: OnnxNode, emit: Emitter, index: int = 1) -> list | None:
    """``axes`` from the attribute (older opsets) or the optional input (newer ones)."""
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    if not emit.has(index):
        return None
    axes = emit.ints(index)
    if axes is None or not all(isinstance(a, int) for a in axes):
        raise ConversionError(f"{node.op_type} node {node.name!r}: axes must be constant")
    return axes


@converter("Squeeze", versions=(1, 11, 13, 21))
def convert_squeeze(node: OnnxNode, emit: Emitter):
    axes, raw = axes_of(node, emit), emit.raw(0)
    if isinstance(raw, Sym) and len(raw.items) == 1:
        return Sym(raw.items, scalar=True)
    x = emit.value(0)
    return emit.method("squeeze", x) if axes is None else emit.method("squeeze", x, tuple(axes))


@converter("Unsqueeze", versions=(1, 11, 13, 21))
def convert_unsqueeze(node: OnnxNode, emit: Emitter):
    axes, raw = axes_of(node, emit), emit.raw(0)
    if isinstance(raw, Sym) and raw.scalar and len(axes) == 1:
        return Sym(raw.items)
    x = emit.value(0)
    if len(axes) == 1:
        return emit.method("unsqueeze", x, axes[0])
    shape = emit.shape(0)
    if shape is None and min(axes) < 0:
        raise ConversionError(f"Unsqueeze node {node.name!r}: negative axes need a known rank")
    rank = len(axes) + (len(shape) if shape is not None else 0)
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        x = emit.method("unsqueeze", x, axis)
    return x


@converter("Expand", versions=(8, 13))
def convert_expand(node: OnnxNode, emit: Emitter):
    target, shape = emit.ints(1), emit.shape(0)
    x = emit.value(0)
    if target is None or shape is None or len(target) < len(shape):
        return emit.call(onnx_expand, x, target if target is not None else emit.value(1))
    pad = len(target) - len(shape)
    full = [None] * pad + list(shape)
    dims = [
        (-1 if i >= pad else 1) if isinstance(t, int) and t == 1 else t
        for i, t in enumerate(target)
    ]
    if any(isinstance(t, int) and t != 1 and f not in (None, 1, t) for t, f in zip(dims, full)):
        return emit.call(onnx_expand, x, target)
    return emit.method("expand", x, dims)


@converter("Tile", versions=(6, 13))
def convert_tile(node: OnnxNode, emit: Emitter):
    repeats = emit.ints(1)
    if repeats is None:
        repeats = emit.method("tolist", emit.value(1))
    return emit.method("repeat", emit.value(0), repeats)
