"""Graph passes. Importing this package registers the built-in passes (explicit list below)."""

from __future__ import annotations

from qdqforge.passes.common import canonicalize, fold_bn, opset_upgrade
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.manager import PassManager
from qdqforge.passes.infra.registry import all_passes, get_pass, register_pass
from qdqforge.passes.ptq import act_observe, ada_weights, apply_balance, arq_weights, dmq_observe
from qdqforge.passes.qat import qat_act_quant, qat_search_n, qat_strip, qat_weight_quant
from qdqforge.passes.quantized import act_quant, fake_quant, insert_qdq, integer_layers

BUILTIN_PASSES = (
    canonicalize.CanonicalizePass,
    fold_bn.FoldBatchNormPass,
    dmq_observe.DmqObservePass,
    apply_balance.ApplyBalancePass,
    arq_weights.ArqWeightsPass,
    ada_weights.AdaWeightsPass,
    act_observe.ActObservePass,
    act_quant.ActQuantPass,
    fake_quant.FakeQuantPass,
    insert_qdq.InsertQdqPass,
    integer_layers.IntegerLayersPass,
    opset_upgrade.OpsetUpgradePass,
    qat_act_quant.QatActQuantPass,
    qat_weight_quant.QatWeightQuantPass,
    qat_search_n.QatSearchNPass,
    qat_strip.QatStripPass,
)

__all__ = [
    "BUILTIN_PASSES",
    "GraphPass",
    "PassContext",
    "PassManager",
    "PassResult",
    "all_passes",
    "get_pass",
    "register_pass",
]
