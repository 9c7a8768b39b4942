"""Resize (and Upsample-style use) -> ``F.interpolate``.

Fast paths: nearest (asymmetric, floor) -> ``nearest``; nearest (half_pixel /
pytorch_half_pixel, round_prefer_ceil) or (tf_half_pixel_for_nn, floor) -> ``nearest-exact``;
linear with half_pixel / pytorch_half_pixel -> ``align_corners=False``, align_corners -> ``True``.
Every other nearest/linear combination (the ONNX default half_pixel + round_prefer_floor,
asymmetric linear, half_pixel_symmetric, ...) runs :func:`onnx_resize`, a separable
``index_select`` kernel; cubic raises ConversionError naming the node.
"""

from __future__ import annotations

import torch.nn.functional as F

from qdqforge.errors import ConversionError
from qdqforge.runtime.kernels.resize import onnx_resize
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
_HALF = ("half_pixel", "pytorch_half_pixel")


def _torch_mode(node: OnnxNode, n: int) -> tuple[str, bool | None]:
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest = node.attr("nearest_mode", "round_prefer_floor")
    if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        return "nearest", None
    half = transform in _HALF and nearest == "round_prefer_ceil"
    if mode == "nearest" and (half or (transform, nearest) == ("tf_half_pixel_for_nn", "floor")):
        return "nearest-exact", None
    if mode == "linear" and transform in _HALF:
        return _LINEAR[n], False
    if mode == "linear" and transform == "align_corners":
        return _LINEAR[n], True
    raise ConversionError(
        f"Resize node {node.name!r}: mode={mode!r} coordinate_transformation_mode={transform!r} "
        f"nearest_mode={nearest!r} is not supported"
    )


@converter("Resize", versions=(11, 13, 18, 19))
def convert_resize(node: OnnxNode, emit: Emitter):
    if node.attr("antialias", 0) or node.attr("axes") is not None:
        raise ConversionError(f"Resize node {node.name!r}: antialias/axes are not supported")
    if node.attr("mode", "nearest") not in ("nearest", "linear"):
        raise ConversionError(f"Resize node {node.name!r}: mode {node.attr('mode')!r}")
    shape = emit.shape(0)
    if shape is None:
        raise ConversionError(f"Resize node {node.name!r}: input rank unknown")
    x = emit.value(0)
    sizes = emit.ints(3) if emit.has(3) else None
    scales = None if sizes is not None else emit.const(2)
    if sizes is None and scales is None:
        raise ConversionError(f"Resize node {node.name!r}: scales or sizes must be constant")
    size = list(sizes[2:]) if sizes is not None else None
    scale = [float(s) for s in scales[2:]] if scales is not None else None
    try:
        mode, align = _torch_mode(node, len(shape) - 2)
    except ConversionError:  # no F.interpolate equivalent: the separable ONNX kernel
        return emit.call(
            onnx_resize,
            x,
            size,
            scale,
            node.attr("mode", "nearest"),
            node.attr("coordinate_transformation_mode", "half_pixel"),
            node.attr("nearest_mode", "round_prefer_floor"),
        )
    return emit.call(F.interpolate, x, size, scale, mode, align)
