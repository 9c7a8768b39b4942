"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> ``F.*_pool{1,2,3}d``.

Pads torch cannot take (asymmetric, or wider than half the kernel) become an explicit ``F.pad``
(-inf for max pooling; zeros counted for average pooling only with count_include_pad).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qdqforge.errors import ConversionError
from qdqforge.runtime.kernels.onnx_ops import same_pad
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _geometry(node: OnnxNode, emit: Emitter):
    kernel = list(node.attr("kernel_shape"))
    n = len(kernel)
    strides = list(node.attr("strides") or [1] * n)
    dilations = list(node.attr("dilations") or [1] * n)
    pads = list(node.attr("pads") or [0] * 2 * n)
    return kernel, strides, dilations, pads, n


def _padded(node: OnnxNode, emit: Emitter, x, kernel, strides, dilations, pads, n, fill):
    """Input and torch padding; pads torch cannot express are applied with ``F.pad`` first."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        upper = auto_pad == "SAME_UPPER"
        return emit.call(same_pad, x, kernel, strides, dilations, upper, fill), [0] * n
    if auto_pad == "VALID":
        return x, [0] * n
    begins, ends = pads[:n], pads[n:]
    if begins == ends and all(p <= k // 2 for p, k in zip(begins, kernel)):
        return x, begins
    torch_pads = [p for i in reversed(range(n)) for p in (begins[i], ends[i])]
    return emit.call(F.pad, x, torch_pads, "constant", fill), [0] * n


@converter("MaxPool", versions=(8, 10, 11, 12))
def convert_max_pool(node: OnnxNode, emit: Emitter):
    # The Indices output is left unproduced (ONNX and torch flatten indices differently).
    kernel, strides, dilations, pads, n = _geometry(node, emit)
    x, padding = _padded(node, emit, emit.value(0), kernel, strides, dilations, pads, n, -math.inf)
    ceil = bool(node.attr("ceil_mode", 0))
    return emit.call(_MAX[n], x, kernel, strides, padding, dilations, ceil)


@converter("AveragePool", versions=(7, 10, 11, 19))
def convert_average_pool(node: OnnxNode, emit: Emitter):
    kernel, strides, dilations, pads, n = _geometry(node, emit)
    if any(d != 1 for d in dilations):
        raise ConversionError(f"AveragePool node {node.name!r}: dilations are not supported")
    include = bool(node.attr("count_include_pad", 0))
    x = emit.value(0)
    begins, ends = pads[:n], pads[n:]
    symmetric_ok = begins == ends and all(p <= k // 2 for p, k in zip(begins, kernel))
    if node.attr("auto_pad", "NOTSET") != "NOTSET" or not symmetric_ok:
        if (not include and any(pads)) or node.attr("auto_pad", "NOTSET") not in (
            "NOTSET",
            "VALID",
        ):
            raise ConversionError(
                f"AveragePool node {node.name!r}: asymmetric/auto pads need count_include_pad=1"
            )
        x, padding = _padded(node, emit, x, kernel, strides, dilations, pads, n, 0.0)
    else:
        padding = begins
    ceil = bool(node.attr("ceil_mode", 0))
    return emit.call(_AVG[n], x, kernel, strides, padding, ceil, include)


@converter("GlobalAveragePool", versions=(1,))
def convert_global_average_pool(node: OnnxNode, emit: Emitter):
    shape = emit.shape(0)
    if shape is None:
        return emit.call(global_pool, emit.value(0), False)
    return emit.call(torch.mean, emit.value(0), list(range(2, len(shape))), keepdim=True)


@converter("GlobalMaxPool", versions=(1,))
def convert_global_max_pool(node: OnnxNode, emit: Emitter):
    return emit.call(global_pool, emit.value(0), True)


def global_pool(x: torch.Tensor, use_max: bool) -> torch.Tensor:
    """Mean or max over every spatial dim, keeping them as size 1."""
    dims = list(range(2, x.dim()))
    return torch.amax(x, dims, keepdim=True) if use_max else torch.mean(x, dims, keepdim=True)
