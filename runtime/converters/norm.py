"""BatchNormalization -> :class:`BatchNormOp` (train/eval like torch), Layer-, Instance- and
GroupNormalization.

ONNX momentum weights the old running value (``running = running * m + batch * (1 - m)``);
torch's weights the new one, so ``torch_momentum = 1 - onnx_momentum``. The node's
``training_mode`` is ignored: like Dropout, the module's ``train()``/``eval()`` flag decides.
"""

from __future__ import annotations

import operator

import torch.nn.functional as F

from qdqforge.errors import ConversionError
from qdqforge.runtime.kernels.onnx_ops import layer_norm_from
from qdqforge.runtime.modules.batchnorm import BatchNormOp
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


@converter("BatchNormalization", versions=(7, 9, 14, 15))
def convert_batch_norm(node: OnnxNode, emit: Emitter):
    # 1 - 0.9 is 0.09999999999999998 in binary; 12 significant digits give torch's 0.1 back.
    momentum = float(f"{1.0 - node.attr('momentum', 0.9):.12g}")
    op = BatchNormOp(momentum, node.attr("epsilon", 1e-5))
    mean_name = node.inputs[3]
    counter = mean_name[: -len("running_mean")] + "num_batches_tracked"
    stats = [emit.value(i) for i in range(1, 5)]
    extra = (
        [emit.value(counter)] if mean_name.endswith("running_mean") and emit.has(counter) else []
    )
    y = emit.module(op, emit.value(0), *stats, *extra, path=None)
    return [y, stats[2], stats[3]][: len(node.outputs)]


@converter("LayerNormalization", versions=(17,))
def convert_layer_norm(node: OnnxNode, emit: Emitter):
    # Mean / InvStdDev outputs are left unproduced: reading them raises a ConversionError.
    axis, eps = node.attr("axis", -1), node.attr("epsilon", 1e-5)
    shape, w_shape = emit.shape(0), emit.shape(1)
    normalized = None
    if shape is not None:
        normalized = shape[axis:] if axis != 0 else shape
    elif w_shape is not None and axis == -len(w_shape):
        normalized = w_shape
    w = emit.value(1)
    b = emit.value(2) if emit.has(2) else None
    if normalized is None or None in normalized:  # the dims are read from x at run time
        return emit.call(layer_norm_from, emit.value(0), axis, w, b, eps)
    weight_matches = w_shape is not None and tuple(w_shape) == tuple(normalized)
    if weight_matches:
        return emit.call(F.layer_norm, emit.value(0), list(normalized), w, b, eps)
    y = emit.call(F.layer_norm, emit.value(0), list(normalized), None, None, eps)
    y = emit.call(operator.mul, y, w)
    return y if b is None else emit.call(operator.add, y, b)


@converter("InstanceNormalization", versions=(1, 6))
def convert_instance_norm(node: OnnxNode, emit: Emitter):
    """Per sample and channel over the spatial dims (GroupNorm with groups = channels)."""
    eps = node.attr("epsilon", 1e-5)
    return emit.call(
        F.instance_norm, emit.value(0), None, None, emit.value(1), emit.value(2), True, 0.0, eps
    )


@converter("GroupNormalization", versions=(18, 21))
def convert_group_norm(node: OnnxNode, emit: Emitter):
    """Opset 21 scales per channel (torch's ``group_norm``); opset 18 per group, so the group's
    scale and bias are repeated over its ``C / num_groups`` channels."""
    groups, eps = node.attr("num_groups"), node.attr("epsilon", 1e-5)
    x, scale, bias = emit.value(0), emit.value(1), emit.value(2)
    if emit.opset < 21:
        shape = emit.shape(0)
        if shape is None or shape[1] is None:
            raise ConversionError(f"GroupNormalization node {node.name!r}: unknown channel count")
        scale, bias = (
            emit.method("repeat_interleave", t, shape[1] // groups) for t in (scale, bias)
        )
    return emit.call(F.group_norm, x, groups, scale, bias, eps)
