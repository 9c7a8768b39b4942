"""Pad -> ``F.pad`` (constant / reflect / edge -> replicate / wrap -> circular).

ONNX pads list all begins then all ends over ``axes`` (default: every dim); torch lists
(begin, end) pairs from the last dim backwards.
"""

from __future__ import annotations

import torch.nn.functional as F

from qdqforge.errors import ConversionError
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converter("Pad", versions=(2, 11, 13, 18, 19, 21))
def convert_pad(node: OnnxNode, emit: Emitter):
    mode = _MODES.get(node.attr("mode", "constant"))
    if mode is None:
        raise ConversionError(f"Pad node {node.name!r}: mode {node.attr('mode')!r}")
    pads = node.attr("pads") if "pads" in node.attrs else emit.ints(1)
    value = node.attr("value", 0.0) if "pads" in node.attrs else _value(emit)
    axes = emit.ints(3) if emit.has(3) else None
    shape = emit.shape(0)
    if pads is None or shape is None or not all(isinstance(p, int) for p in pads):
        raise ConversionError(f"Pad node {node.name!r}: needs constant pads and a known rank")
    rank = len(shape)
    axes = [a + rank if a < 0 else a for a in (axes or range(rank))]
    begin = dict(zip(axes, pads[: len(axes)]))
    end = dict(zip(axes, pads[len(axes) :]))
    x = emit.value(0)
    first = min((a for a in axes if begin[a] or end[a]), default=None)
    if first is None:
        return x
    torch_pads = [
        p for a in range(rank - 1, first - 1, -1) for p in (begin.get(a, 0), end.get(a, 0))
    ]
    if mode == "constant":
        return emit.call(F.pad, x, torch_pads, "constant", value)
    return emit.call(F.pad, x, torch_pads, mode)


def _value(emit: Emitter):
    if not emit.has(2):
        return 0.0
    const = emit.const(2)
    if const is None:
        raise ConversionError(f"Pad node {emit.node.name!r}: constant_value must be constant")
    return const.item()
