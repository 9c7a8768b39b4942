"""GatherElements and GatherND (indices may be negative, as ONNX allows)."""

from __future__ import annotations

import torch

from qdqforge.runtime.kernels.onnx_ops import gather_nd, wrap_negative
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


@converter("GatherElements", versions=(11, 13))
def convert_gather_elements(node: OnnxNode, emit: Emitter):
    axis = node.attr("axis", 0)
    const = emit.const(1)
    index = emit.value(1)
    if const is None or (const < 0).any():
        index = emit.call(wrap_negative, index, emit.value(0), axis)
    return emit.call(torch.gather, emit.value(0), axis, index)


@converter("GatherND", versions=(11, 12, 13))
def convert_gather_nd(node: OnnxNode, emit: Emitter):
    return emit.call(gather_nd, emit.value(0), emit.value(1), node.attr("batch_dims", 0))
