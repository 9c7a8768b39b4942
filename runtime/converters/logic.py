"""Comparisons, boolean logic and Where."""

from __future__ import annotations

import torch

from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_COMPARE = {
    "Equal": (torch.eq, (7, 11, 13, 19)),
    "Greater": (torch.gt, (7, 9, 13)),
    "GreaterOrEqual": (torch.ge, (12, 16)),
    "Less": (torch.lt, (7, 9, 13)),
    "LessOrEqual": (torch.le, (12, 16)),
    "And": (torch.logical_and, (7,)),
    "Or": (torch.logical_or, (7,)),
    "Xor": (torch.logical_xor, (7,)),
}


def convert_compare(node: OnnxNode, emit: Emitter):
    return emit.call(_COMPARE[node.op_type][0], emit.value(0), emit.scalar(1))


for _op, (_fn, _versions) in _COMPARE.items():
    converter(_op, versions=_versions)(convert_compare)


@converter("Where", versions=(9, 16))
def convert_where(node: OnnxNode, emit: Emitter):
    return emit.call(torch.where, emit.value(0), emit.value(1), emit.value(2))


@converter("IsInf", versions=(10, 20))
def convert_isinf(node: OnnxNode, emit: Emitter):
    negative, positive = node.attr("detect_negative", 1), node.attr("detect_positive", 1)
    fn = torch.isinf if negative and positive else torch.isposinf if positive else torch.isneginf
    if not (negative or positive):
        return emit.call(torch.zeros_like, emit.value(0), dtype=torch.bool)
    return emit.call(fn, emit.value(0))
