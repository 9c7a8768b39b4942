"""Resize (and Upsample-style use) -> ``F.interpolate``.

Supported: mode nearest with (asymmetric, floor) -> ``nearest`` and (half_pixel /
pytorch_half_pixel / tf_half_pixel_for_nn, round_prefer_ceil) -> ``nearest-exact``; mode linear
with half_pixel / pytorch_half_pixel -> ``align_corners=False`` and align_corners -> ``True``.
Other combinations raise ConversionError naming the node and the attributes.
"""

from __future__ import annotations

import torch.nn.functional as F

from qdqforge.errors import ConversionError
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
    if mode == "nearest" and (half or transform == "tf_half_pixel_for_nn"):
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
    shape = emit.shape(0)
    if shape is None:
        raise ConversionError(f"Resize node {node.name!r}: input rank unknown")
    n = len(shape) - 2
    mode, align = _torch_mode(node, n)
    x = emit.value(0)
    sizes = emit.ints(3) if emit.has(3) else None
    if sizes is not None:
        return emit.call(F.interpolate, x, list(sizes[2:]), None, mode, align)
    scales = emit.const(2)
    if scales is None:
        raise ConversionError(f"Resize node {node.name!r}: scales or sizes must be constant")
    scale = [float(s) for s in scales[2:]]
    return emit.call(F.interpolate, x, None, scale, mode, align)
