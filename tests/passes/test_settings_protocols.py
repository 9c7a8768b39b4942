"""front's configs match the Protocols the passes read them through (passes never import front).

A field renamed on one side (``act_algo``, ``retrain_data_config``, ...) would make a pass fail
at run time on an attribute; here it fails by name.
"""

from __future__ import annotations

import pytest

from qdqforge.front.config.ptq import LayerConfig, QuantConfig
from qdqforge.front.config.qat import RetrainConfig, RetrainLayerConfig
from qdqforge.passes.ptq import ptq_settings
from qdqforge.passes.qat import retrain_layers

PTQ_LAYER = LayerConfig("conv", dmq_balancer_param=0.5)
QAT_LAYER = RetrainLayerConfig("conv")
CASES = {
    "PtqSettings": (QuantConfig(layers=(PTQ_LAYER,)), ptq_settings.PtqSettings),
    "PtqLayerSettings": (PTQ_LAYER, ptq_settings.PtqLayerSettings),
    "ActivationSettings": (PTQ_LAYER.activation_quant_params, ptq_settings.ActivationSettings),
    "WeightSettings": (PTQ_LAYER.weight_quant_params, ptq_settings.WeightSettings),
    "RetrainSettings": (RetrainConfig(layers=(QAT_LAYER,)), retrain_layers.RetrainSettings),
    "RetrainLayerSettings": (QAT_LAYER, retrain_layers.RetrainLayerSettings),
    "RetrainDataSettings": (QAT_LAYER.retrain_data_config, retrain_layers.RetrainDataSettings),
    "RetrainWeightSettings": (
        QAT_LAYER.retrain_weight_config,
        retrain_layers.RetrainWeightSettings,
    ),
}


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_front_config_matches_the_protocol(name):
    value, protocol = CASES[name]
    assert isinstance(value, protocol)


def test_a_missing_member_is_seen():
    class Incomplete:
        name, quant_enable, dmq_balancer_param = "conv", True, None

    assert not isinstance(Incomplete(), ptq_settings.PtqLayerSettings)
