"""ScatterND, ScatterElements (Scatter before opset 11) and CumSum (see kernels/onnx_scatter)."""

from __future__ import annotations

from qdqforge.runtime.kernels.onnx_scatter import cumsum, scatter_elements, scatter_nd
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


@converter("ScatterND", versions=(11, 13, 16, 18))
def convert_scatter_nd(node: OnnxNode, emit: Emitter):
    reduction = node.attr("reduction", "none")
    return emit.call(scatter_nd, emit.value(0), emit.value(1), emit.value(2), reduction)


@converter("ScatterElements", versions=(11, 13, 16, 18))
def convert_scatter_elements(node: OnnxNode, emit: Emitter):
    axis, reduction = node.attr("axis", 0), node.attr("reduction", "none")
    return emit.call(scatter_elements, emit.value(0), emit.value(1), emit.value(2), axis, reduction)


@converter("CumSum", versions=(11, 14))
def convert_cumsum(node: OnnxNode, emit: Emitter):
    axis = emit.ints(1)
    axis = axis[0] if axis is not None and len(axis) == 1 else emit.value(1)
    exclusive, reverse = node.attr("exclusive", 0), node.attr("reverse", 0)
    return emit.call(cumsum, emit.value(0), axis, exclusive, reverse)
