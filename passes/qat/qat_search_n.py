"""qat_search_n: a search-N node after every layer that has both QAT nodes (docs/amct.md §4.6).

Before / after (the BN is looked through when it is the layer's sole consumer, because at save
it is folded into the layer and the deployed accumulator is the BN's output)::

    x_q -> Conv(W_q, B) -> [BatchNormalization] -> y
    x_q -> Conv(W_q, B) -> [BatchNormalization] -> y' -> qdqforge::SearchN(y', scale_d, scale_w
                                           [, gamma, running_var, beta, running_mean[, B]]) -> y

``scale_d``/``scale_w`` are outputs 1 of the layer's UlqActQuant and weight nodes. In eval mode
the runtime op accumulates, per output channel ``c``, the error of carrying the int32
accumulator ``s32 = round(y' / deq_c)`` as int16 after a right shift by N in 1..16, with
``deq_c = scale_d * scale_w[c]`` without a BN, and with one ``scale_d * s'_c``, the folded weight
scale ``scale_w[c] * |gamma_c / sqrt(var_c + eps)|`` floored by the folded bias
(``runtime.kernels.folded_scale``: beta, mean and the layer's bias ``B`` are inputs for that).
The layer output keeps its name (``y``), so graph outputs do not change. Attributes: ``layer``,
``channels``, ``channel_axis`` (1 for Conv/ConvTranspose, -1 for Gemm/MatMul), ``bn_epsilon``
and, for a Gemm whose ``beta`` is not 1, ``bias_beta``.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import DOMAIN, RETRAIN_WEIGHT_OPS, SEARCH_N, ULQ_ACT_QUANT
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.qat.retrain_layers import qat_producer, retrain_sites


@register_pass
class QatSearchNPass(GraphPass, name="qat_search_n"):
    """Insert a search-N statistics node after every layer with activation and weight QAT nodes."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"search_n_inserted": 0, "after_bn": 0, "no_qat_nodes": 0, "disabled": 0}
        taken = taken_names(graph)
        for _, site in retrain_sites(graph, ctx.config, stats, self.name):
            act = qat_producer(site.activation, ULQ_ACT_QUANT.op)
            weight = qat_producer(site.node.inputs[1], frozenset(RETRAIN_WEIGHT_OPS.values()))
            if act is None or weight is None:
                stats["no_qat_nodes"] += 1
                continue
            bn = folded_bn(graph, site.node)
            _insert(graph, site, act, weight, bn, taken)
            stats["search_n_inserted"] += 1
            stats["after_bn"] += bn is not None
        toposort(graph)
        return PassResult(graph, stats["search_n_inserted"] > 0, stats)


def folded_bn(graph: Graph, layer: gs.Node) -> gs.Node | None:
    """The BatchNormalization ``fold_bn`` would fold into ``layer`` (same conditions), or None."""
    bn = query.sole_consumer(layer.outputs[0], graph.gs.outputs)
    if bn is None or bn.op != "BatchNormalization" or bn.domain or len(bn.outputs) != 1:
        return None
    if layer.op not in ("Conv", "ConvTranspose", "Gemm"):
        return None
    return bn if all(isinstance(t, gs.Constant) for t in bn.inputs[1:5]) else None


def _insert(graph: Graph, site: LayerSite, act, weight, bn, taken: set[str]) -> None:
    y = (bn or site.node).outputs[0]
    name = y.name
    y.name = unique_name(f"{name}.before_search_n", taken)
    out = gs.Variable(name, dtype=y.dtype, shape=y.shape)
    for reader in list(y.outputs):
        reader.inputs[reader.inputs.index(y)] = out
    outputs = graph.gs.outputs
    outputs[:] = [out if t is y else t for t in outputs]
    inputs = [y, act.outputs[1], weight.outputs[1]]
    attrs = {
        "layer": site.name,
        "channels": int(weight.attrs["channels"]),
        "channel_axis": 1 if site.node.op in ("Conv", "ConvTranspose") else -1,
    }
    if bn is not None:
        inputs += [bn.inputs[1], bn.inputs[4], bn.inputs[2], bn.inputs[3]]
        attrs["bn_epsilon"] = float(bn.attrs.get("epsilon", 1e-5))
        if len(site.node.inputs) > 2 and site.node.inputs[2].name:
            inputs.append(site.node.inputs[2])  # the layer's bias, part of the folded bias
            if float(site.node.attrs.get("beta", 1.0)) != 1.0:
                attrs["bias_beta"] = float(site.node.attrs["beta"])
    node = gs.Node(SEARCH_N.op, unique_name(f"{site.name}.search_n", taken), attrs, inputs, [out])
    node.domain = DOMAIN
    graph.gs.nodes.append(node)
    graph.stamp(node, "qat_search_n", "after_bn" if bn is not None else "after_layer", [site.node])
