"""QAT layer configs and the QAT pass list, for pass and converter tests."""

from __future__ import annotations

from qdqforge.front.config.qat import (
    RetrainDataConfig,
    RetrainLayerConfig,
    RetrainWeightConfig,
)

INSERT = ("qat_act_quant", "qat_weight_quant", "qat_search_n")


def layer(name, algo="arq_retrain", channel_wise=True, clips=None, enable=True):
    data = RetrainDataConfig(clip_max=clips[0], clip_min=clips[1]) if clips else RetrainDataConfig()
    return RetrainLayerConfig(name, enable, data, RetrainWeightConfig(algo, channel_wise))
