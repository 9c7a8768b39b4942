"""Activations: Relu, LeakyRelu, Clip, Sigmoid, Tanh, Gelu, HardSigmoid, HardSwish, Softmax, ...

Each maps to the kernel torch's own module would run (``Clip(0, 6)`` -> ``F.hardtanh`` like
``nn.ReLU6``), so step time matches the original model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from qdqforge.runtime.kernels.onnx_ops import softmax_2d
from qdqforge.runtime.registry import Emitter, OnnxNode, converter

_SIMPLE = {
    "Relu": (F.relu, (6, 13, 14)),
    "Sigmoid": (torch.sigmoid, (6, 13)),
    "Tanh": (torch.tanh, (6, 13)),
    "HardSwish": (F.hardswish, (14,)),
    "Softsign": (F.softsign, (1,)),
    "Mish": (F.mish, (18,)),
}


def convert_simple_activation(node: OnnxNode, emit: Emitter):
    return emit.call(_SIMPLE[node.op_type][0], emit.value(0))


for _op, (_fn, _versions) in _SIMPLE.items():
    converter(_op, versions=_versions)(convert_simple_activation)


@converter("LeakyRelu", versions=(6, 16))
def convert_leaky_relu(node: OnnxNode, emit: Emitter):
    return emit.call(F.leaky_relu, emit.value(0), node.attr("alpha", 0.01))


@converter("Elu", versions=(6,))
def convert_elu(node: OnnxNode, emit: Emitter):
    return emit.call(F.elu, emit.value(0), node.attr("alpha", 1.0))


@converter("Celu", versions=(12,))
def convert_celu(node: OnnxNode, emit: Emitter):
    return emit.call(F.celu, emit.value(0), node.attr("alpha", 1.0))


@converter("Selu", versions=(6,))
def convert_selu(node: OnnxNode, emit: Emitter):
    alpha, gamma = (
        node.attr("alpha", 1.67326319217681884765625),
        node.attr("gamma", 1.05070102214813232421875),
    )
    x = emit.value(0)
    neg = emit.call(torch.mul, emit.call(torch.expm1, x), alpha)
    return emit.call(torch.mul, emit.call(torch.where, emit.call(torch.gt, x, 0), x, neg), gamma)


@converter("Softplus", versions=(1,))
def convert_softplus(node: OnnxNode, emit: Emitter):
    return emit.call(F.softplus, emit.value(0))


@converter("PRelu", versions=(7, 9, 16))
def convert_prelu(node: OnnxNode, emit: Emitter):
    x, slope = emit.value(0), emit.value(1)
    return emit.call(torch.where, emit.call(torch.ge, x, 0), x, emit.call(torch.mul, x, slope))


@converter("Clip", versions=(6, 11, 12, 13))
def convert_clip(node: OnnxNode, emit: Emitter):
    if emit.opset < 11 or "min" in node.attrs or "max" in node.attrs:
        low, high = node.attr("min", -math.inf), node.attr("max", math.inf)
    else:
        low = emit.scalar(1) if emit.has(1) else None
        high = emit.scalar(2) if emit.has(2) else None
    x = emit.value(0)
    if isinstance(low, float) and isinstance(high, float) and math.isfinite(low + high):
        return emit.call(F.hardtanh, x, low, high)  # what nn.ReLU6 / nn.Hardtanh run
    if low is not None and high is not None and (low == -math.inf or high == math.inf):
        low, high = (None if low == -math.inf else low), (None if high == math.inf else high)
    if low is None and high is None:
        return x
    return emit.call(torch.clamp, x, low, high)


@converter("Gelu", versions=(20,))
def convert_gelu(node: OnnxNode, emit: Emitter):
    return emit.call(F.gelu, emit.value(0), approximate=node.attr("approximate", "none"))


@converter("HardSigmoid", versions=(6,))
def convert_hard_sigmoid(node: OnnxNode, emit: Emitter):
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    x = emit.value(0)
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return emit.call(F.hardsigmoid, x)
    return emit.call(torch.clamp, emit.call(torch.add, emit.call(torch.mul, x, alpha), beta), 0, 1)


_SOFTMAX = {"Softmax": F.softmax, "LogSoftmax": F.log_softmax}


@converter("Softmax", versions=(1, 11, 13))
@converter("LogSoftmax", versions=(1, 11, 13))
def convert_softmax(node: OnnxNode, emit: Emitter):
    """Softmax or LogSoftmax: over ``axis`` from opset 13, over the flattened tail before."""
    fn, x = _SOFTMAX[node.op_type], emit.value(0)
    if emit.opset >= 13:
        return emit.call(fn, x, node.attr("axis", -1))
    axis, shape = node.attr("axis", 1), emit.shape(0)
    if shape is not None and axis in (-1, len(shape) - 1):
        return emit.call(fn, x, -1)
    return emit.call(softmax_2d, x, axis, fn is F.log_softmax)
