"""insert_qdq: QuantizeLinear/DequantizeLinear on each recorded layer's input and weight.

Before / after (layer with ``scale_d``/``offset_d``/``scale_w`` in options ``records``)::

    x -> Conv(W, B) -> y
    x -> Q(s_d, o_d) -> DQ(s_d, o_d) -> Conv(DQ(Q(W, s_w, axis)), B) -> y

Math (spec §4.0): ``q = clamp(round(x / s) + o, qmin, qmax)``, ``x^ = (q - o) * s`` with zero
point ``o = offset_d`` on the layer's activation grid (``act_grid``: int8 ``[-128, 127]``, or
int16 ``[-32768, 32767]`` for a record with ``act_type`` INT16, which needs opset 21: run
``opset_upgrade`` first) and per-output-channel weight scales (``axis`` 0 for Conv/Linear
weights, 1 for ConvTranspose and ``[Cin, Cout]`` MatMul weights) or one per tensor; weight
offsets are 0. The bias becomes ``DequantizeLinear(round(B / (s_d * s_w)) as int32, s_d * s_w)``
(``bias_int32``, the deploy model's value). The weight Q/DQ pair reads the weight constant
directly (before the Transpose of a Linear on 3-D input). This is the fake-quant model of
``save_model`` (spec §5), as QDQ. A 16-bit layer keeps its bias float: there is no integer
accumulator to share it with, and on the 256 times finer ``s_d * s_w`` grid an int32 bias
overflows 256 times sooner (the calibration module's bias is float too).
With option ``int8_weights`` (the deploy model's layers without an integer op: ConvTranspose,
AveragePool, and layers with 16-bit activations) the weight is stored as the int8 constant
``round(W / s_w)`` feeding only the DequantizeLinear.
INT4 weights (record ``dst_type``) use the 4-bit grid (``weight_grid``).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError, PreconditionError
from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.act_grid import act_bits, opset_needed, zero_point
from qdqforge.passes.base import GraphPass, PassContext, PassResult
from qdqforge.passes.bias_int32 import dequantize_int32_bias, layer_bias
from qdqforge.passes.registry import register_pass
from qdqforge.passes.weight_grid import clamp_to_grid, weight_integers

WEIGHT_AXIS = {"Conv": 0, "Linear": 0, "ConvTranspose": 1, "MatMul": 1}


@register_pass
class InsertQdqPass(GraphPass):
    """Quantize each recorded layer's activation and weight with QuantizeLinear/DequantizeLinear."""

    name = "insert_qdq"

    def requires(self, graph: Graph, ctx: PassContext) -> None:
        needed = opset_needed(ctx.options_for(self.name).get("records", {}))
        if graph.opset < needed:
            raise PreconditionError(
                f"insert_qdq: int16 QuantizeLinear needs opset {needed}, the graph has "
                f"{graph.opset}; run opset_upgrade first"
            )

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        options = ctx.options_for(self.name)
        records, int8_weights = options.get("records", {}), options.get("int8_weights", False)
        taken = taken_names(graph)
        stats = {"activations": 0, "weights": 0}
        for layer, rec in records.items():
            site = layer_site(graph, layer)
            if site is None:
                raise PassError(f"insert_qdq: layer '{layer}' has no node in the graph")
            _quantize_input(graph, site, rec, taken)
            stats["activations"] += 1
            if site.weight is not None and rec.scale_w:
                _quantize_weight(graph, site, rec, taken, int8_weights)
                stats["weights"] += 1
        toposort(graph)
        return PassResult(graph, bool(records), stats)


def _qdq(
    graph: Graph, site: LayerSite, x: gs.Tensor, scale, zp, axis, tag: str, taken, stored=False
) -> gs.Tensor:
    """Q/DQ pair on ``x`` (integer type of ``zp``); ``stored``: ``x`` is the integer constant."""
    s = gs.Constant(
        unique_name(f"{site.name}.{tag}quant.scale", taken), np.asarray(scale, np.float32)
    )
    zp = zp if isinstance(zp, np.ndarray) else np.asarray(zp, np.int8)
    z = gs.Constant(unique_name(f"{site.name}.{tag}quant.offset", taken), zp)
    out = gs.Variable(unique_name(f"{site.name}.{tag}dequant.out", taken), dtype=np.float32)
    attrs = {} if axis is None else {"axis": axis}
    nodes, q = [], x
    if not stored:
        q = gs.Variable(unique_name(f"{site.name}.{tag}quant.out", taken), dtype=zp.dtype)
        name = unique_name(f"{site.name}.{tag}quant", taken)
        nodes.append(gs.Node("QuantizeLinear", name, attrs, [x, s, z], [q]))
    name = unique_name(f"{site.name}.{tag}dequant", taken)
    nodes.append(gs.Node("DequantizeLinear", name, attrs, [q, s, z], [out]))
    for node in nodes:
        graph.gs.nodes.append(node)
        graph.stamp(node, "insert_qdq", tag + "qdq", [site.node])
    return out


def _quantize_input(graph: Graph, site: LayerSite, rec, taken) -> None:
    if rec.scale_d is None or rec.offset_d is None:
        raise PassError(f"insert_qdq: layer '{site.name}' has no scale_d/offset_d")
    site.node.inputs[0] = _qdq(
        graph, site, site.activation, rec.scale_d, zero_point(rec), None, "", taken
    )


def _quantize_weight(graph: Graph, site: LayerSite, rec, taken, int8_weights: bool) -> None:
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
    weight = _stored_weight(site, scale, axis, rec, taken, int8_weights)
    w_dq = _qdq(graph, site, weight, value, zp, axis, "weight_", taken, stored=int8_weights)
    holder = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    holder.inputs[holder.inputs.index(site.weight)] = w_dq
    bias = layer_bias(graph, site.node)
    if bias and rec.scale_d is not None and act_bits(rec) == 8:
        dequantize_int32_bias(graph, site, bias, np.float32(rec.scale_d) * scale, taken)


def _stored_weight(site: LayerSite, scale, axis, rec, taken, int8_weights: bool) -> gs.Constant:
    """The weight the Q/DQ reads: int8 ``W_q`` (deploy), or ``W`` clamped to a 4-bit grid."""
    w = np.asarray(site.weight.values, np.float32)
    if int8_weights:
        q = weight_integers(w, scale, axis, rec)
        return gs.Constant(unique_name(f"{site.weight.name}.int8", taken), q)
    clamped = clamp_to_grid(w, scale, axis, rec)
    if clamped is None:
        return site.weight
    return gs.Constant(unique_name(f"{site.weight.name}.int4_clamped", taken), clamped)
