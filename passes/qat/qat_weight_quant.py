"""qat_weight_quant: a weight fake-quant node on the weight edge of every retrain_enable layer.

Before / after (``arq_retrain``; ``ulq_retrain`` writes ``UlqRetrainWeight``)::

    x -> Conv(W, B) -> y
    W -> qdqforge::ArqRetrainWeight -> (W_q, scale_w);  x -> Conv(W_q, B) -> y

Math (docs/amct.md §4.5), per output channel ``c`` (``channel_wise``) or per tensor, ``b`` bits::

    arq_retrain:  s_c = max|W_c| / (2^(b-1) - 1)  recomputed at every step   (no parameter)
    ulq_retrain:  s_c = s0_c * exp(t_c),  s0 = ARQ scale of the initial W,  t learnable (init 0)
    W_q[c] = clamp(round(W[c] / s_c), -2^(b-1), 2^(b-1) - 1) * s_c,   dL/dW = g inside the range

Attributes: ``layer``, ``num_bits``, ``channel_wise``, ``channel_axis`` (0 for Conv/Linear, 1
for ConvTranspose and ``[Cin, Cout]`` MatMul weights), ``groups`` (ConvTranspose channel order)
and ``channels`` (output channels). A Linear on 3-D input reads ``Transpose(W)``: the node sits
between ``W`` and the Transpose, so it always sees the stored layout.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import DOMAIN, RETRAIN_WEIGHT_OPS
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.qat.retrain_layers import RetrainLayerSettings, retrain_sites


@register_pass
class QatWeightQuantPass(GraphPass, name="qat_weight_quant"):
    """Insert an arq_retrain / ulq_retrain weight fake-quant node on every retrain_enable weight."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"arq_retrain": 0, "ulq_retrain": 0, "no_weight": 0, "disabled": 0}
        taken = taken_names(graph)
        for layer, site in retrain_sites(graph, ctx.config, stats, self.name):
            if site.weight is None or layer.retrain_weight_config is None:
                stats["no_weight"] += 1
                continue
            _insert(
                graph, site, weight_quant_attrs(layer, site, ctx.config.weight_bits(layer)), taken
            )
            stats[layer.retrain_weight_config.algo] += 1
        toposort(graph)
        return PassResult(graph, stats["arq_retrain"] + stats["ulq_retrain"] > 0, stats)


def output_channels(site: LayerSite) -> int:
    """Output channels of the layer, from its stored weight."""
    shape = site.weight.values.shape
    if site.weight_layout == "ConvTranspose":
        return shape[1] * site.groups
    return shape[WEIGHT_AXIS[site.weight_layout]]


def weight_quant_attrs(layer: RetrainLayerSettings, site: LayerSite, bits: int) -> dict:
    """ONNX attributes of ``layer``'s weight node (module docstring); ``bits`` of its grid."""
    weights = layer.retrain_weight_config
    return {
        "layer": layer.name,
        "num_bits": bits,
        "channel_wise": int(weights.channel_wise),
        "channel_axis": WEIGHT_AXIS[site.weight_layout],
        "groups": site.groups if site.weight_layout == "ConvTranspose" else 1,
        "channels": output_channels(site),
        "algo": weights.algo,
    }


def _insert(graph: Graph, site: LayerSite, attrs: dict, taken: set[str]) -> None:
    w = site.weight
    op = RETRAIN_WEIGHT_OPS[attrs.pop("algo")]
    out = gs.Variable(unique_name(f"{w.name}.{op}", taken), dtype=w.dtype, shape=w.shape)
    width = attrs["channels"] if attrs["channel_wise"] else 1
    scale = gs.Variable(unique_name(f"{site.name}.scale_w", taken), dtype=np.float32, shape=[width])
    node = gs.Node(op, unique_name(f"{site.name}.weight_quant", taken), attrs, [w], [out, scale])
    node.domain = DOMAIN
    graph.gs.nodes.append(node)
    reader = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    reader.inputs[reader.inputs.index(w)] = out  # Linear on 3-D: the Transpose's input
    graph.stamp(node, "qat_weight_quant", op, [site.node])
