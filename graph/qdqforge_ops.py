"""The ``qdqforge`` custom domain: its op types and the attributes each one carries.

One definition for the passes that write these nodes and the runtime converters that read them.
Every op returns, as output 0, a tensor of input 0's type and shape (its other outputs are
scales; :mod:`qdqforge.graph.shapes` looks through these ops). ``layer`` is always the torch layer
name (``<module>.matmul_<k>.input_1`` for input 1 of a MatMul between two activations).

=====================  ====================  ===============================================
op                     written by            attributes (``?``: only in some nodes)
=====================  ====================  ===============================================
``ActObserver``        ``act_observe``       layer, algo, num_bits, symmetric, batch_num;
                                             ifmr: max_percentile, min_percentile,
                                             search_range, search_step; hfmg: num_of_bins
``DmqObserver``        ``dmq_observe``       layer, alpha, channel_axis, op_type, groups
``ActQuant``           ``act_quant``         layer, scale, offset, num_bits
``UlqActQuant``        ``qat_act_quant``     layer, num_bits, batch_num, fixed_min,
                                             clip_max?, clip_min?
``ArqRetrainWeight``   ``qat_weight_quant``  layer, num_bits, channel_wise, channel_axis,
``UlqRetrainWeight``                         groups, channels
``SearchN``            ``qat_search_n``      layer, channels, channel_axis, bn_epsilon,
                                             bias_beta?
=====================  ====================  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "qdqforge"


@dataclass(frozen=True)
class OpSchema:
    """One op of the domain: its type and the attribute names its nodes carry.

    Attributes:
        op: the node's ``op_type``.
        required: attributes every node of this op has.
        optional: attributes some nodes have (algorithm-specific or given by the config).
    """

    op: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def attributes(self) -> frozenset[str]:
        """Every attribute name a node of this op may carry."""
        return frozenset((*self.required, *self.optional))


ACT_OBSERVER = OpSchema(
    "ActObserver",
    ("layer", "algo", "num_bits", "symmetric", "batch_num"),
    ("max_percentile", "min_percentile", "search_range", "search_step", "num_of_bins"),
)
DMQ_OBSERVER = OpSchema("DmqObserver", ("layer", "alpha", "channel_axis", "op_type", "groups"))
ACT_QUANT = OpSchema("ActQuant", ("layer", "scale", "offset", "num_bits"))
ULQ_ACT_QUANT = OpSchema(
    "UlqActQuant", ("layer", "num_bits", "batch_num", "fixed_min"), ("clip_max", "clip_min")
)
_WEIGHT_ATTRS = ("layer", "num_bits", "channel_wise", "channel_axis", "groups", "channels")
ARQ_RETRAIN_WEIGHT = OpSchema("ArqRetrainWeight", _WEIGHT_ATTRS)
ULQ_RETRAIN_WEIGHT = OpSchema("UlqRetrainWeight", _WEIGHT_ATTRS)
SEARCH_N = OpSchema("SearchN", ("layer", "channels", "channel_axis", "bn_epsilon"), ("bias_beta",))

# The QAT weight node per ``retrain_weight_config.algo``.
RETRAIN_WEIGHT_OPS = {"arq_retrain": ARQ_RETRAIN_WEIGHT.op, "ulq_retrain": ULQ_RETRAIN_WEIGHT.op}
CALIBRATION_OPS = (ACT_OBSERVER, DMQ_OBSERVER, ACT_QUANT)
QAT_OPS = (ULQ_ACT_QUANT, ARQ_RETRAIN_WEIGHT, ULQ_RETRAIN_WEIGHT, SEARCH_N)
SCHEMAS = {schema.op: schema for schema in (*CALIBRATION_OPS, *QAT_OPS)}
