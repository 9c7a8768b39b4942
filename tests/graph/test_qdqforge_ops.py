"""graph/qdqforge_ops.py is the one schema of the ``qdqforge`` domain: every node the passes
write carries its schema's attributes, and the runtime converts every op it lists."""

from __future__ import annotations

import pytest

from qdqforge.front.config.ptq import ActivationQuantParams, LayerConfig, QuantConfig
from qdqforge.front.config.qat import (
    RetrainConfig,
    RetrainDataConfig,
    RetrainLayerConfig,
    RetrainWeightConfig,
)
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io
from qdqforge.graph.qdqforge_ops import DOMAIN, SCHEMAS
from qdqforge.passes import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline
from qdqforge.runtime.registry import resolve
from tests.helpers import onnx_graphs as g

HFMG = ActivationQuantParams(8, "hfmg", None, None, None, None, num_of_bins=64)
PTQ = QuantConfig(batch_num=2, layers=(LayerConfig("conv", dmq_balancer_param=0.5),))
PTQ_HFMG = QuantConfig(layers=(LayerConfig("conv", activation_quant_params=HFMG),))
CLIPS = RetrainDataConfig(clip_max=1.0, clip_min=-1.0)
ULQ = RetrainWeightConfig(algo="ulq_retrain")
QAT_ARQ = RetrainConfig(layers=(RetrainLayerConfig("conv"),))
QAT_ULQ = RetrainConfig(layers=(RetrainLayerConfig("conv", True, CLIPS, ULQ),))
QAT = ("qat_act_quant", "qat_weight_quant", "qat_search_n")
RECORDS = {"act_quant": {"records": {"conv": LayerRecord(scale_d=0.02, offset_d=0)}}}
# case: (passes, config, options, the domain ops it writes)
CASES = {
    "act_observe_ifmr": (("act_observe",), PTQ, None, {"ActObserver"}),
    "act_observe_hfmg": (("act_observe",), PTQ_HFMG, None, {"ActObserver"}),
    "dmq_observe": (("dmq_observe",), PTQ, None, {"DmqObserver"}),
    "act_quant": (("act_quant",), None, RECORDS, {"ActQuant"}),
    "qat_arq": (QAT, QAT_ARQ, None, {"UlqActQuant", "ArqRetrainWeight", "SearchN"}),
    "qat_ulq": (QAT, QAT_ULQ, None, {"UlqActQuant", "UlqRetrainWeight", "SearchN"}),
}


def conv_bn_graph():
    proto = g.conv_bn_model()
    proto.graph.node[0].metadata_props.add(key="qdqforge.module", value="conv")
    return io.load(proto)


def test_cases_cover_every_op_of_the_domain():
    assert set().union(*(case[3] for case in CASES.values())) == set(SCHEMAS)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_written_nodes_follow_their_schema(case):
    passes, config, options, expected = CASES[case]
    graph = run_pipeline(conv_bn_graph(), passes, ctx=PassContext(config), options=options).graph
    written = [n for n in graph.gs.nodes if n.domain == DOMAIN]
    assert {n.op for n in written} == expected
    for node in written:
        schema = SCHEMAS[node.op]
        assert set(schema.required) <= set(node.attrs) <= schema.attributes, node.name


@pytest.mark.parametrize("op", sorted(SCHEMAS))
def test_runtime_converts_every_op_of_the_domain(op):
    assert resolve(op, DOMAIN, 1) is not None
