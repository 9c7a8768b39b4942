"""ONNX Resize for the (mode, coordinate transform, nearest mode) combinations that
``F.interpolate`` cannot express, done separably per spatial axis with ``index_select``.

Formulas from the ONNX Resize spec: ``x_original = transform(x_resized)``; nearest rounds it with
``nearest_mode``; linear blends the two neighbours after clamping to ``[0, length - 1]``.
"""

from __future__ import annotations

import math

import torch


def source_coords(out_len: int, in_len: int, scale: float, transform: str, device) -> torch.Tensor:
    """Original-image coordinate of every output position along one axis (float64)."""
    x = torch.arange(out_len, dtype=torch.float64, device=device)
    if transform == "asymmetric":
        return x / scale
    if transform == "align_corners":
        return x * 0 if out_len == 1 else x * (in_len - 1) / (out_len - 1)
    if transform == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if transform == "pytorch_half_pixel" and out_len == 1:
        return x * 0
    if transform == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        offset = in_len / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5  # half_pixel, pytorch_half_pixel


def _nearest(coords: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "floor":
        return torch.floor(coords)
    if mode == "ceil":
        return torch.ceil(coords)
    if mode == "round_prefer_ceil":
        return torch.floor(coords + 0.5)
    return torch.ceil(coords - 0.5)  # round_prefer_floor, the ONNX default


def _resize_axis(x, axis, out_len, scale, mode, transform, nearest_mode):
    in_len = x.shape[axis]
    coords = source_coords(out_len, in_len, scale, transform, x.device)
    if mode == "nearest":
        index = _nearest(coords, nearest_mode).clamp(0, in_len - 1).long()
        return x.index_select(axis, index)
    coords = coords.clamp(0, in_len - 1)
    low = torch.floor(coords)
    high = (low + 1).clamp(max=in_len - 1)
    shape = [1] * x.dim()
    shape[axis] = out_len
    weight = (coords - low).to(x.dtype).reshape(shape)
    a = x.index_select(axis, low.long())
    b = x.index_select(axis, high.long())
    return a + (b - a) * weight


def onnx_resize(x, sizes, scales, mode: str, transform: str, nearest_mode: str):
    """Resize every axis after the first two (``sizes`` or ``scales`` for those axes)."""
    for i in range(2, x.dim()):
        in_len = x.shape[i]
        if sizes is not None:
            out_len = int(sizes[i - 2])
            scale = out_len / in_len
        else:
            scale = float(scales[i - 2])
            out_len = math.floor(in_len * scale)
        if out_len != in_len or transform not in ("half_pixel", "asymmetric", "align_corners"):
            x = _resize_axis(x, i, out_len, scale, mode, transform, nearest_mode)
    return x
