"""insert_qdq: standard QDQ on each recorded layer: int8 weights, int32 bias, activation Q/DQ.

Before / after (layer with ``scale_d``/``offset_d``/``scale_w`` in options ``records``)::

    x -> Conv(W, B) -> y
    x -> Q(s_d, o_d) -> DQ(s_d, o_d) -> Conv(DQ(W_q, s_w, axis), DQ(B_q, s_d * s_w)) -> y

Math (docs/amct.md §4.0): ``q = clamp(round(x / s) + o, qmin, qmax)``, ``x^ = (q - o) s`` with zero
point ``o = offset_d`` on the layer's activation grid (``act_grid``: int8 ``[-128, 127]``, or
int16 ``[-32768, 32767]`` for a record with ``act_type`` INT16, which needs opset 21: run
``opset_upgrade`` first) and per-output-channel weight scales (``axis`` 0 for Conv/Linear
weights, 1 for ConvTranspose and ``[Cin, Cout]`` MatMul weights) or one per tensor; weight
offsets are 0. The weight is stored as the int8 constant ``W_q = round(W / s_w)`` on the
record's weight grid (``weight_grid``: INT8, or INT7/INT6/INT4 in an int8 container) feeding
only its DequantizeLinear (before the Transpose of a Linear on a 3-D input). The bias becomes
``DequantizeLinear(round(B / (s_d * s_w)) as int32, s_d * s_w)`` (``bias_int32``, the deploy
model's value). A 16-bit layer keeps its bias float: there is no integer accumulator to share it
with, and on the 256 times finer ``s_d * s_w`` grid an int32 bias overflows 256 times sooner.

This is the QDQ model of ``save_model`` (the form TensorRT, OpenVINO and onnxruntime's QDQ path
consume: the same integers as the deploy model), and the deploy model's form for layers without
an integer op (ConvTranspose, AveragePool, 16-bit activations, MatMuls between two
activations). Such a MatMul (``<module>.matmul_<k>``) gets a Q/DQ pair on both operands: input 1
on the record's ``scale_h``/``offset_h``, named ``<layer>.input_1.quant.out``
(:mod:`qdqforge.graph.activation_matmul`).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PreconditionError
from qdqforge.graph import query
from qdqforge.graph.activation_matmul import recorded_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.grids.act_grid import act_bits, opset_needed, zero_point
from qdqforge.passes.grids.bias_int32 import dequantize_int32_bias, layer_bias
from qdqforge.passes.grids.weight_grid import check_channels, weight_integers
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.quantized.record_options import RecordOptions


@register_pass
class InsertQdqPass(GraphPass[RecordOptions], name="insert_qdq"):
    """Quantize each recorded layer's activation and weight with QuantizeLinear/DequantizeLinear."""

    def requires(self, graph: Graph, ctx: PassContext) -> None:
        needed = opset_needed(self.options.records)
        if graph.opset < needed:
            raise PreconditionError(
                f"insert_qdq: int16 QuantizeLinear needs opset {needed}, the graph has "
                f"{graph.opset}; run opset_upgrade first"
            )

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = self.options.records
        taken = taken_names(graph)
        stats = {"activations": 0, "weights": 0}
        for layer, rec in records.items():
            site, inputs = recorded_inputs(graph, layer, rec, self.name)
            for index, name, grid in inputs:
                _quantize_input(graph, site, index, name, grid, taken)
                stats["activations"] += 1
            if site.weight is not None and rec.scale_w:
                _quantize_weight(graph, site, rec, taken)
                stats["weights"] += 1
        toposort(graph)
        return PassResult(graph, bool(records), stats)


def _qdq(
    graph: Graph, site: LayerSite, x: gs.Tensor, scale, zp, axis, tag: str, taken, stored=False
) -> gs.Tensor:
    """Q/DQ pair on ``x`` (integer type of ``zp``); ``stored``: ``x`` is the integer constant.

    Names start with ``<site.name>.<tag>``; ``tag`` may be empty, ``"weight_"`` or ``"input_1."``.
    """
    prefix = f"{site.name}.{tag}"
    s = gs.Constant(unique_name(f"{prefix}quant.scale", taken), np.asarray(scale, np.float32))
    zp = zp if isinstance(zp, np.ndarray) else np.asarray(zp, np.int8)
    z = gs.Constant(unique_name(f"{prefix}quant.offset", taken), zp)
    out = gs.Variable(unique_name(f"{prefix}dequant.out", taken), dtype=np.float32)
    attrs = {} if axis is None else {"axis": axis}
    nodes, q = [], x
    if not stored:
        q = gs.Variable(unique_name(f"{prefix}quant.out", taken), dtype=zp.dtype)
        name = unique_name(f"{prefix}quant", taken)
        nodes.append(gs.Node("QuantizeLinear", name, attrs, [x, s, z], [q]))
    name = unique_name(f"{prefix}dequant", taken)
    nodes.append(gs.Node("DequantizeLinear", name, attrs, [q, s, z], [out]))
    for node in nodes:
        graph.gs.nodes.append(node)
        graph.stamp(node, "insert_qdq", tag + "qdq", [site.node])
    return out


def _quantize_input(graph: Graph, site: LayerSite, index: int, name: str, grid, taken) -> None:
    """Q/DQ on input ``index`` on ``grid`` (its ``scale_d``/``offset_d``: ``recorded_inputs``)."""
    tag = name.removeprefix(site.name).removeprefix(".")
    x = site.node.inputs[index]
    site.node.inputs[index] = _qdq(
        graph, site, x, grid.scale_d, zero_point(grid), None, tag + "." if tag else "", taken
    )


def _quantize_weight(graph: Graph, site: LayerSite, rec, taken) -> None:
    scale = np.asarray(rec.scale_w, np.float32)
    axis = WEIGHT_AXIS[site.weight_layout] if scale.size > 1 else None
    w = np.asarray(site.weight.values, np.float32)
    check_channels(w, scale, axis, site.name)
    value = scale if axis is not None else scale.reshape(())
    zp = np.zeros(scale.shape if axis is not None else (), np.int8)
    q = gs.Constant(
        unique_name(f"{site.weight.name}.int8", taken), weight_integers(w, scale, axis, rec)
    )
    w_dq = _qdq(graph, site, q, value, zp, axis, "weight_", taken, stored=True)
    holder = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    holder.inputs[holder.inputs.index(site.weight)] = w_dq
    bias = layer_bias(graph, site.node)
    if bias and rec.scale_d is not None and act_bits(rec) == 8:
        dequantize_int32_bias(graph, site, bias, np.float32(rec.scale_d) * scale, taken)
