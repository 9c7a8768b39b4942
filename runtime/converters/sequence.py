"""Sequence ops (SplitToSequence, SequenceAt, ConcatFromSequence, ...): a sequence is a list.

A constant position becomes a plain ``seq[i]`` in the fx code; run-time positions and the list
builders call :mod:`qdqforge.runtime.kernels.onnx_sequence`.
"""

from __future__ import annotations

import torch

from qdqforge.runtime.kernels import onnx_sequence as seq
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


@converter("SplitToSequence", versions=(11,))
def convert_split_to_sequence(node: OnnxNode, emit: Emitter):
    split = None
    if emit.has(1):
        split = emit.ints(1)
        const = emit.const(1)
        if const is not None and const.ndim == 0:
            split = int(const)
        elif split is None or not all(isinstance(s, int) for s in split):
            split = emit.value(1)
    axis, keep = node.attr("axis", 0), node.attr("keepdims", 1)
    return emit.call(seq.split_to_sequence, emit.value(0), split, axis, keep)


@converter("SequenceAt", versions=(11,))
def convert_sequence_at(node: OnnxNode, emit: Emitter):
    position = emit.const(1)
    if position is not None:
        return emit.getitem(emit.value(0), int(position))
    return emit.call(seq.sequence_at, emit.value(0), emit.value(1))


@converter("SequenceConstruct", versions=(11,))
def convert_sequence_construct(node: OnnxNode, emit: Emitter):
    return emit.call(seq.sequence_construct, *(emit.value(i) for i in range(len(node.inputs))))


@converter("SequenceEmpty", versions=(11,))
def convert_sequence_empty(node: OnnxNode, emit: Emitter):
    return emit.call(seq.sequence_construct)


@converter("SequenceLength", versions=(11,))
def convert_sequence_length(node: OnnxNode, emit: Emitter):
    return emit.call(seq.sequence_length, emit.value(0))


@converter("SequenceInsert", versions=(11,))
def convert_sequence_insert(node: OnnxNode, emit: Emitter):
    position = emit.value(2) if emit.has(2) else None
    return emit.call(seq.sequence_insert, emit.value(0), emit.value(1), position)


@converter("SequenceErase", versions=(11,))
def convert_sequence_erase(node: OnnxNode, emit: Emitter):
    return emit.call(seq.sequence_erase, emit.value(0), emit.value(1) if emit.has(1) else None)


@converter("ConcatFromSequence", versions=(11,))
def convert_concat_from_sequence(node: OnnxNode, emit: Emitter):
    axis, stack = node.attr("axis"), node.attr("new_axis", 0)
    return emit.call(torch.stack if stack else torch.cat, emit.value(0), axis)
