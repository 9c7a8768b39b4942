"""ReduceMean/Sum/Max/Min/Prod/L2: ``axes`` as attribute (older opsets) or input (newer ones)."""

from __future__ import annotations

import torch

from qdqforge.errors import ConversionError
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_REDUCE = {
    "ReduceMean": (torch.mean, (1, 11, 13, 18)),
    "ReduceSum": (torch.sum, (1, 11, 13)),
    "ReduceMax": (torch.amax, (1, 11, 12, 13, 18, 20)),
    "ReduceMin": (torch.amin, (1, 11, 12, 13, 18, 20)),
    "ReduceProd": (None, (1, 11, 13, 18)),
    "ReduceL2": (None, (1, 11, 13, 18)),
}


def convert_reduce(node: OnnxNode, emit: Emitter):
    keep = bool(node.attr("keepdims", 1))
    axes = node.attr("axes")
    if axes is None and emit.has(1):
        axes = emit.ints(1)
        if axes is None or not all(isinstance(a, int) for a in axes):
            raise ConversionError(f"{node.op_type} node {node.name!r}: axes must be constant")
    x = emit.value(0)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return x
        shape = emit.shape(0)
        axes = list(range(len(shape))) if shape is not None else None
    return _reduce(node.op_type, emit, x, axes, keep)


def _reduce(op: str, emit: Emitter, x, axes, keep: bool):
    if op == "ReduceL2":
        return emit.call(torch.linalg.vector_norm, x, 2, axes, keep)
    if op == "ReduceProd":
        for axis in sorted(axes or [], reverse=True):
            x = emit.call(torch.prod, x, axis, keep)
        return x if axes else emit.call(torch.prod, x)
    dims = list(axes) if axes is not None else None
    return emit.call(_REDUCE[op][0], x, dims, keepdim=keep)


for _op, (_fn, _versions) in _REDUCE.items():
    converter(_op, versions=_versions)(convert_reduce)
