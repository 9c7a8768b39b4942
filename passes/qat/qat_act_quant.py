"""qat_act_quant: a ULQ activation fake-quant node on the input of every ``retrain_enable`` layer.

Before / after::

    x -> Conv(W, B) -> y
    x -> qdqforge::UlqActQuant -> (x_q, scale_d);  x_q -> Conv(W, B) -> y

A MatMul between two activations (``<module>.matmul_<k>``) gets one on each operand; input 1's
node has ``layer`` ``<module>.matmul_<k>.input_1`` (:mod:`qdqforge.graph.activation_matmul`)::

    a, b -> MatMul -> y
    a -> UlqActQuant -> a_q;  b -> UlqActQuant -> b_q;  a_q, b_q -> MatMul -> y

Math (docs/amct.md §4.5), ``b`` bits, learnable clips ``clip_max > 0 >= clip_min``::

    s = (clip_max - clip_min) / (2^b - 1),  o = round(-2^(b-1) - clip_min / s)
    x_q = (clamp(round(x / s) + o, -2^(b-1), 2^(b-1) - 1) - o) * s

Attributes: ``layer``, ``num_bits``, ``batch_num``, ``fixed_min`` (the config's, else 1 iff ``x``
is written by a Relu, so ``clip_min = 0`` and ``o = -2^(b-1)``) and ``clip_max``/``clip_min``
when the config gives them; otherwise the runtime initializes the clips with IFMR over the
first ``batch_num`` forwards. ``scale_d`` (output 1) feeds the search-N node.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.activation_matmul import quantized_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import DOMAIN, ULQ_ACT_QUANT
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.qat.retrain_layers import (
    RetrainLayerSettings,
    RetrainSettings,
    dst_bits,
    retrain_sites,
)


@register_pass
class QatActQuantPass(GraphPass, name="qat_act_quant"):
    """Insert a learnable-clip ULQ activation fake-quant node before every retrain_enable layer."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"act_quant_inserted": 0, "fixed_min": 0, "disabled": 0, "activation_matmul": 0}
        taken = taken_names(graph)
        for layer, site in retrain_sites(graph, ctx.config, stats, self.name):
            for index, name in quantized_inputs(site):
                attrs = act_quant_attrs(ctx.config, layer, site, index)
                _insert(graph, site, index, attrs | {"layer": name}, taken)
                stats["act_quant_inserted"] += 1
                stats["fixed_min"] += attrs["fixed_min"]
        toposort(graph)
        return PassResult(graph, stats["act_quant_inserted"] > 0, stats)


def act_quant_attrs(
    config: RetrainSettings, layer: RetrainLayerSettings, site: LayerSite, index: int = 0
) -> dict:
    """ONNX attributes of ``layer``'s UlqActQuant node on input ``index`` (module docstring)."""
    data = layer.retrain_data_config
    source = query.producer(site.node.inputs[index])
    fixed_min = data.fixed_min
    if fixed_min is None:
        fixed_min = source is not None and source.op == "Relu" and not source.domain
    attrs = {
        "layer": layer.name,
        "num_bits": dst_bits(data.dst_type),
        "batch_num": config.batch_num,
        "fixed_min": int(fixed_min),
    }
    if data.clip_max is not None and data.clip_min is not None:
        attrs["clip_max"], attrs["clip_min"] = float(data.clip_max), float(data.clip_min)
    return attrs


def _insert(graph: Graph, site: LayerSite, index: int, attrs: dict, taken: set[str]) -> None:
    x, name = site.node.inputs[index], attrs["layer"]
    out = gs.Variable(unique_name(f"{x.name}.ulq", taken), dtype=x.dtype, shape=x.shape)
    scale = gs.Variable(unique_name(f"{name}.scale_d", taken), dtype=np.float32, shape=[])
    node = gs.Node(
        ULQ_ACT_QUANT.op, unique_name(f"{name}.act_quant", taken), attrs, [x], [out, scale]
    )
    node.domain = DOMAIN
    graph.gs.nodes.append(node)
    site.node.inputs[index] = out
    graph.stamp(node, "qat_act_quant", "ulq_" + site.node.op.lower(), [site.node])
