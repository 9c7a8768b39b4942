"""Conv and ConvTranspose -> ``F.conv{1,2,3}d`` / ``F.conv_transpose{1,2,3}d``.

Symmetric pads go straight to torch; asymmetric pads (and ``auto_pad`` SAME_* with stride > 1)
become an explicit ``F.pad`` first (ONNX pads: all begins, then all ends).
"""

from __future__ import annotations

import torch.nn.functional as F

from qdqforge.errors import ConversionError
from qdqforge.runtime.kernels.onnx_ops import same_pad
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def spatial_rank(node: OnnxNode, emit: Emitter) -> int:
    """Number of spatial dims, from kernel_shape, the weight or the input."""
    if node.attr("kernel_shape"):
        return len(node.attr("kernel_shape"))
    for index, extra in ((1, 2), (0, 2)):
        shape = emit.shape(index)
        if shape is not None:
            return len(shape) - extra
    raise ConversionError(f"{node.op_type} node {node.name!r}: cannot tell 1d/2d/3d")


def _kernel(node: OnnxNode, emit: Emitter, n: int) -> list[int]:
    kernel = node.attr("kernel_shape") or (emit.shape(1) or (None,) * (n + 2))[2:]
    if None in kernel:
        raise ConversionError(f"{node.op_type} node {node.name!r}: unknown kernel shape")
    return list(kernel)


@converter("Conv", versions=(1, 11))
def convert_conv(node: OnnxNode, emit: Emitter):
    n = spatial_rank(node, emit)
    strides = list(node.attr("strides") or [1] * n)
    dilations = list(node.attr("dilations") or [1] * n)
    x = emit.value(0)
    auto_pad = node.attr("auto_pad", "NOTSET")
    padding: object = list(node.attr("pads") or [0] * 2 * n)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        kernel = _kernel(node, emit, n)
        if strides == [1] * n and auto_pad == "SAME_UPPER":
            padding = "same"
        else:
            x = emit.call(same_pad, x, kernel, strides, dilations, auto_pad == "SAME_UPPER")
            padding = 0
    elif auto_pad == "VALID":
        padding = 0
    else:
        x, padding = symmetric(emit, x, padding, n)
    b = bias(emit)
    w = emit.value(1)
    return emit.call(_CONV[n], x, w, b, strides, padding, dilations, node.attr("group", 1))


def bias(emit: Emitter):
    """Input 2, or None when absent or an all-zero constant (the exporter's stand-in for
    ``bias=False``; passing None runs the same kernel as the original module)."""
    if not emit.has(2):
        return None
    const = emit.const(2)
    return None if const is not None and not const.any() else emit.value(2)


def symmetric(emit: Emitter, x, pads: list[int], n: int, value: float = 0.0):
    """Torch padding for ONNX ``pads``; asymmetric pads are applied with ``F.pad`` first."""
    begins, ends = pads[:n], pads[n:]
    if begins == ends:
        return x, begins
    torch_pads = [p for i in reversed(range(n)) for p in (begins[i], ends[i])]
    return emit.call(F.pad, x, torch_pads, "constant", value), 0


@converter("ConvTranspose", versions=(1, 11))
def convert_conv_transpose(node: OnnxNode, emit: Emitter):
    n = spatial_rank(node, emit)
    strides = list(node.attr("strides") or [1] * n)
    dilations = list(node.attr("dilations") or [1] * n)
    output_padding = list(node.attr("output_padding") or [0] * n)
    pads = list(node.attr("pads") or [0] * 2 * n)
    if node.attr("output_shape") or node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        pads, output_padding = _transpose_pads(node, emit, n, strides, dilations, output_padding)
    x, w = emit.value(0), emit.value(1)
    b = bias(emit)
    group = node.attr("group", 1)
    begins, ends = pads[:n], pads[n:]
    if begins == ends:
        fn = _CONV_T[n]
        return emit.call(fn, x, w, b, strides, begins, output_padding, group, dilations)
    y = emit.call(_CONV_T[n], x, w, b, strides, 0, output_padding, group, dilations)
    index = [slice(None), slice(None)]
    index += [slice(bg, -e if e else None) for bg, e in zip(begins, ends)]
    return emit.getitem(y, tuple(index))


def _transpose_pads(node, emit, n, strides, dilations, output_padding):
    """Pads from ``output_shape`` / ``auto_pad`` (ONNX ConvTranspose spec formulas)."""
    in_shape, kernel = emit.shape(0), _kernel(node, emit, n)
    if in_shape is None or None in in_shape[2:]:
        raise ConversionError(f"ConvTranspose node {node.name!r}: needs static spatial dims")
    spatial = in_shape[2:]
    out = node.attr("output_shape") or [s * st for s, st in zip(spatial, strides)]
    out = list(out)[-n:]
    begins, ends = [], []
    for i in range(n):
        total = strides[i] * (spatial[i] - 1) + output_padding[i]
        total += (kernel[i] - 1) * dilations[i] + 1 - out[i]
        total = max(total, 0)
        # Spec: only SAME_UPPER puts the smaller half first (NOTSET and SAME_LOWER do not).
        upper = node.attr("auto_pad", "NOTSET") == "SAME_UPPER"
        begin = total // 2 if upper else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
    return begins + ends, output_padding
