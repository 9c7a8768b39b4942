"""insert_qdq: QuantizeLinear/DequantizeLinear on each recorded layer's input and weight.

Before / after (layer with ``scale_d``/``offset_d``/``scale_w`` in options ``records``)::

    x -> Conv(W, B) -> y
    x -> Q(s_d, o_d) -> DQ(s_d, o_d) -> Conv(DQ(Q(W, s_w, axis)), B) -> y

Math (spec §4.0): ``q = clamp(round(x / s) + o, -128, 127)``, ``x^ = (q - o) * s`` with int8
zero point ``o = offset_d`` and per-output-channel weight scales (``axis`` 0 for Conv/Linear
weights, 1 for ConvTranspose and ``[Cin, Cout]`` MatMul weights) or one per tensor; weight
offsets are 0. The weight Q/DQ pair reads the weight constant directly (before the Transpose of
a Linear on 3-D input). This is the fake-quant model of ``save_model`` (spec §5), as QDQ.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.base import GraphPass, PassContext, PassResult
from qdqforge.passes.registry import register_pass

WEIGHT_AXIS = {"Conv": 0, "Linear": 0, "ConvTranspose": 1, "MatMul": 1}


@register_pass
class InsertQdqPass(GraphPass):
    """Quantize each recorded layer's activation and weight with QuantizeLinear/DequantizeLinear."""

    name = "insert_qdq"

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = ctx.options_for(self.name).get("records", {})
        taken = taken_names(graph)
        stats = {"activations": 0, "weights": 0}
        for layer, rec in records.items():
            site = layer_site(graph, layer)
            if site is None:
                raise PassError(f"insert_qdq: layer '{layer}' has no node in the graph")
            _quantize_input(graph, site, rec, taken)
            stats["activations"] += 1
            if site.weight is not None and rec.scale_w:
                _quantize_weight(graph, site, rec, taken)
                stats["weights"] += 1
        toposort(graph)
        return PassResult(graph, bool(records), stats)


def _qdq(
    graph: Graph, site: LayerSite, x: gs.Tensor, scale, zp, axis, tag: str, taken
) -> gs.Tensor:
    s = gs.Constant(
        unique_name(f"{site.name}.{tag}quant.scale", taken), np.asarray(scale, np.float32)
    )
    z = gs.Constant(unique_name(f"{site.name}.{tag}quant.offset", taken), np.asarray(zp, np.int8))
    q = gs.Variable(unique_name(f"{site.name}.{tag}quant.out", taken), dtype=np.int8)
    out = gs.Variable(unique_name(f"{site.name}.{tag}dequant.out", taken), dtype=np.float32)
    attrs = {} if axis is None else {"axis": axis}
    nodes = [
        gs.Node(
            "QuantizeLinear", unique_name(f"{site.name}.{tag}quant", taken), attrs, [x, s, z], [q]
        ),
        gs.Node(
            "DequantizeLinear",
            unique_name(f"{site.name}.{tag}dequant", taken),
            attrs,
            [q, s, z],
            [out],
        ),
    ]
    for node in nodes:
        graph.gs.nodes.append(node)
        graph.stamp(node, "insert_qdq", tag + "qdq", [site.node])
    return out


def _quantize_input(graph: Graph, site: LayerSite, rec, taken) -> None:
    if rec.scale_d is None or rec.offset_d is None:
        raise PassError(f"insert_qdq: layer '{site.name}' has no scale_d/offset_d")
    site.node.inputs[0] = _qdq(
        graph, site, site.activation, rec.scale_d, rec.offset_d, None, "", taken
    )


def _quantize_weight(graph: Graph, site: LayerSite, rec, taken) -> None:
    scale = np.asarray(rec.scale_w, np.float32)
    axis = WEIGHT_AXIS[site.weight_layout] if scale.size > 1 else None
    channels = None if axis is None else site.weight.values.shape[axis]
    if channels is not None and channels != scale.size:
        raise PassError(
            f"insert_qdq: layer '{site.name}' has {scale.size} scale_w values for {channels} "
            "weight channels (grouped ConvTranspose per-channel weights are not supported yet)"
        )
    value = scale if axis is not None else scale.reshape(())
    zp = np.zeros(scale.shape if axis is not None else (), np.int8)
    w_dq = _qdq(graph, site, site.weight, value, zp, axis, "weight_", taken)
    holder = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    holder.inputs[holder.inputs.index(site.weight)] = w_dq
