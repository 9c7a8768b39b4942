"""QAT nodes of the ``qdqforge`` domain (passes ``qat_act_quant``/``qat_weight_quant``/
``qat_search_n``) -> stateful modules at fixed paths, so their tensors have stable names:

=========================  ===================================  =================================
node                       module                               state_dict entries
=========================  ===================================  =================================
``UlqActQuant``            ``<layer>.act_quant`` UlqActQuantOp  ``clip_max``, ``clip_min`` (params)
``ArqRetrainWeight``       ``<layer>.weight_quant``             none
``UlqRetrainWeight``       ``<layer>.weight_quant``             ``scale_log_ratio`` (param),
                                                                ``scale_init``
``SearchN``                ``<layer>.search_n`` SearchNOp       ``error``, ``batches``
=========================  ===================================  =================================

The ULQ weight scale starts from the ARQ scale of the weight initializer the graph holds.
"""

from __future__ import annotations

import torch

from qdqforge.errors import ConversionError
from qdqforge.graph.qdqforge_ops import (
    ARQ_RETRAIN_WEIGHT,
    DOMAIN,
    SEARCH_N,
    ULQ_ACT_QUANT,
    ULQ_RETRAIN_WEIGHT,
)
from qdqforge.runtime.kernels.ulq import ulq_weight_init
from qdqforge.runtime.modules.qat_act import UlqActQuantOp
from qdqforge.runtime.modules.qat_search_n import SearchNOp
from qdqforge.runtime.modules.qat_weight import ArqRetrainWeightOp, UlqRetrainWeightOp
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


def _pair(emit: Emitter, out):
    return [emit.getitem(out, 0), emit.getitem(out, 1)]


@converter(ULQ_ACT_QUANT.op, versions=(1,), domain=DOMAIN)
def convert_ulq_act_quant(node: OnnxNode, emit: Emitter):
    layer = node.attr("layer")
    given = node.attr("clip_max") is not None and node.attr("clip_min") is not None
    op = UlqActQuantOp(
        layer,
        int(node.attr("num_bits", 8)),
        bool(node.attr("fixed_min", 0)),
        int(node.attr("batch_num", 1)),
        (node.attr("clip_max"), node.attr("clip_min")) if given else None,
    )
    return _pair(emit, emit.module(op, emit.value(0), path=f"{layer}.act_quant"))


def _weight_args(node: OnnxNode) -> tuple[str, int, int, int]:
    layer, bits = node.attr("layer"), int(node.attr("num_bits", 8))
    return layer, bits, int(node.attr("channel_axis", 0)), int(node.attr("groups", 1))


@converter(ARQ_RETRAIN_WEIGHT.op, versions=(1,), domain=DOMAIN)
def convert_arq_retrain_weight(node: OnnxNode, emit: Emitter):
    layer, bits, axis, groups = _weight_args(node)
    op = ArqRetrainWeightOp(layer, bits, bool(node.attr("channel_wise", 1)), axis, groups)
    op.weight_name = node.inputs[0]
    return _pair(emit, emit.module(op, emit.value(0), path=f"{layer}.weight_quant"))


@converter(ULQ_RETRAIN_WEIGHT.op, versions=(1,), domain=DOMAIN)
def convert_ulq_retrain_weight(node: OnnxNode, emit: Emitter):
    layer, bits, axis, groups = _weight_args(node)
    weight = emit.graph.initializer(node.inputs[0]) if emit.graph is not None else None
    if weight is None:
        raise ConversionError(f"UlqRetrainWeight node {node.name!r}: the weight is not stored")
    channel_wise = bool(node.attr("channel_wise", 1))
    init = ulq_weight_init(torch.from_numpy(weight.copy()), bits, channel_wise, axis, groups)
    op = UlqRetrainWeightOp(layer, bits, init, axis, groups)
    op.weight_name = node.inputs[0]
    return _pair(emit, emit.module(op, emit.value(0), path=f"{layer}.weight_quant"))


@converter(SEARCH_N.op, versions=(1,), domain=DOMAIN)
def convert_search_n(node: OnnxNode, emit: Emitter):
    layer = node.attr("layer")
    op = SearchNOp(
        layer, int(node.attr("channels")), int(node.attr("channel_axis", 1)),
        node.attr("bn_epsilon"), float(node.attr("bias_beta", 1.0)),
    )  # fmt: skip
    args = [emit.value(i) for i in range(len(node.inputs))]
    return emit.module(op, *args, path=f"{layer}.search_n")
