"""Small QDQ graphs that a default onnxruntime session fuses into integer kernels.

``qdq_conv`` / ``qdq_linear``: ``x -> Q -> DQ -> Conv|Gemm(DQ(W_int8), DQ(B_int32)) -> Q -> DQ``.
With non-negative inputs on an asymmetric grid (zero point -128, so the kernel sees u8 near 255)
and weights of one sign at ``weight_q`` (127), adjacent u8 x s8 products sum to 2 * 255 * 127 =
64770 in a pair: beyond int16, so a kernel that sums pairs with saturation (x86 AVX2 without
VNNI) gets it wrong; at ``weight_q`` 64 (7 bits) the pair sum 32640 fits.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from tests.helpers.onnx_graphs import init, make_model, tensor_info


def qdq_conv(weight_q: int, channels: int = 16, seed: int = 0):
    """``(model, feeds)`` of a 3x3 conv on ``channels`` inputs, QDQ form (outputs ~ +-90)."""
    rng = np.random.default_rng(seed)
    w = np.full((4, channels, 3, 3), weight_q, np.int8)
    w[1] = -w[1]  # one channel of each sign
    inits = [
        *_qdq_constants("x", 0.02, -128),
        *_qdq_constants("y", 10.0 * weight_q / 127, 0),
        init("w", w),
        init("w.scale", np.full(4, 0.01, np.float32)),
        init("w.zp", np.zeros(4, np.int8)),
        init("b", rng.integers(-100, 100, 4).astype(np.int32)),
        init("b.scale", np.full(4, np.float32(0.02) * np.float32(0.01), np.float32)),
        init("b.zp", np.zeros(4, np.int32)),
    ]
    nodes = [
        *_qdq("x", "input", "x.dq"),
        _dq("w", "w.dq", axis=0),
        _dq("b", "b.dq", axis=0),
        _node("Conv", ["x.dq", "w.dq", "b.dq"], "conv", pads=[1, 1, 1, 1]),
        *_qdq("y", "conv", "output"),
    ]
    model = make_model(nodes, [tensor_info("input", [1, channels, 6, 6])],
                       [tensor_info("output", None)], inits)  # fmt: skip
    x = rng.uniform(4.5, 5.1, (1, channels, 6, 6)).astype(np.float32)  # q near 127 (u8 255)
    return model, {"input": x}


def qdq_linear(weight_q: int, features: int = 32, seed: int = 0):
    """``(model, feeds)`` of a Linear (Gemm, transB) on 2-D input, QDQ form (outputs ~ 80)."""
    rng = np.random.default_rng(seed)
    w = np.full((4, features), weight_q, np.int8)
    inits = [
        *_qdq_constants("x", 0.02, -128),
        *_qdq_constants("y", 2.5 * weight_q / 127, 0),
        init("w", w),
        init("w.scale", np.float32(0.01)),
        init("w.zp", np.int8(0)),
    ]
    nodes = [
        *_qdq("x", "input", "x.dq"),
        _dq("w", "w.dq"),
        _node("Gemm", ["x.dq", "w.dq"], "gemm", transB=1),
        *_qdq("y", "gemm", "output"),
    ]
    model = make_model(nodes, [tensor_info("input", [3, features])],
                       [tensor_info("output", None)], inits)  # fmt: skip
    return model, {"input": rng.uniform(4.5, 5.1, (3, features)).astype(np.float32)}


def _qdq_constants(name: str, scale: float, zp: int):
    return [init(f"{name}.scale", np.float32(scale)), init(f"{name}.zp", np.int8(zp))]


def _qdq(name: str, x: str, out: str):
    return [
        _node("QuantizeLinear", [x, f"{name}.scale", f"{name}.zp"], f"{name}.q"),
        _node("DequantizeLinear", [f"{name}.q", f"{name}.scale", f"{name}.zp"], out),
    ]


def _dq(name: str, out: str, axis: int | None = None):
    attrs = {} if axis is None else {"axis": axis}
    return _node("DequantizeLinear", [name, f"{name}.scale", f"{name}.zp"], out, **attrs)


def _node(op: str, inputs, out: str, **attrs):
    return helper.make_node(op, list(inputs), [out], name=f"{out}_node", **attrs)
