"""fake_quant: each recorded layer's quantization simulated with plain float ONNX ops.

Before / after (layer with ``scale_d``/``offset_d``/``scale_w`` in options ``records``)::

    x -> Conv(W, B) -> y
    x -> Div(s_d) -> Round -> Add(o_d) -> Clip(qmin, qmax) -> Sub(o_d) -> Mul(s_d)
      -> Conv(W^, B) -> y                  '-> <layer>.quant.out: q, integers as float

Math: ``q = clamp(round(x / s_d) + o_d, qmin, qmax)`` (round half to even, ONNX Round and
``torch.round``), ``x^ = (q - o_d) * s_d``: the op sequence of the calibration and QAT modules'
fake quantization (``runtime.kernels.fake_quant_ref``), so each elementwise value is the same
float. Weights ``W^`` and biases are left as the graph holds them: the weights are already on
their grid, stored dequantized as float (PTQ: the modified ONNX's ARQ/AdaRound weights, which
``save_model`` checks against the record's ``scale_w``; QAT: the QAT module's own fake-quantized
weights, BN folded), and the bias is the module's float bias (the deploy and QDQ models round it
to int32 on ``s_d * s_w``). A zero ``o_d`` leaves out the Add
and Sub. 16-bit activations (record ``act_type`` INT16) clip to ``[-32768, 32767]``: no opset
upgrade is needed. A MatMul between two activations (``<module>.matmul_<k>``) gets the chain on
both operands: input 1 on the record's ``scale_h``/``offset_h``, its integers named
``<layer>.input_1.quant.out`` (:mod:`qdqforge.graph.activation_matmul`).

Why not QuantizeLinear/DequantizeLinear: a runtime's default settings turn ``DQ -> Conv/MatMul ->
Q`` into integer kernels (onnxruntime: QLinearConv, QGemm, MatMulIntegerToFloat; its
WeightBiasQuantization even quantizes a float weight per tensor when a DQ feeds the layer and a Q
follows it), and on x86 CPUs without VNNI those multiply u8 x s8 pairs into saturating int16.
With no Q/DQ in the graph nothing is fused into integer arithmetic: any runtime computes what the
torch module computed, up to float summation order. The standard QDQ form is the separate QDQ
model (``insert_qdq``). AMCT's own fake-quant model is made of the same float ops (docs/amct.md §5).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.graph.activation_matmul import recorded_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.grids.act_grid import act_bits, act_range
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.quantized.record_options import RecordOptions

QUANT_OUT = ".quant.out"


@register_pass
class FakeQuantPass(GraphPass[RecordOptions], name="fake_quant"):
    """Simulate each recorded layer's input quantization with float ops (no Q/DQ)."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = self.options.records
        taken = taken_names(graph)
        stats = {"activations": 0}
        for layer, rec in records.items():
            site, inputs = recorded_inputs(graph, layer, rec, self.name)
            for index, name, grid in inputs:
                chain = _Chain(graph, site, name, taken)
                site.node.inputs[index] = _fake_quant_input(chain, site.node.inputs[index], grid)
                stats["activations"] += 1
        toposort(graph)
        return PassResult(graph, bool(records), stats)


class _Chain:
    """Appends the elementwise ops of one activation's fake quantization."""

    def __init__(self, graph: Graph, site: LayerSite, prefix: str, taken: set[str]) -> None:
        self.graph, self.site, self.prefix, self.taken = graph, site, prefix, taken

    def const(self, tag: str, value: float) -> gs.Constant:
        name = unique_name(f"{self.prefix}.{tag}", self.taken)
        return gs.Constant(name, np.asarray(value, np.float32))

    def op(self, op: str, x: gs.Tensor, operands, out_tag: str) -> gs.Tensor:
        out = gs.Variable(unique_name(f"{self.prefix}.{out_tag}", self.taken), np.float32)
        node_name = unique_name(f"{self.prefix}.quant_{op.lower()}", self.taken)
        node = gs.Node(op, node_name, {}, [x, *operands], [out])
        self.graph.gs.nodes.append(node)
        self.graph.stamp(node, "fake_quant", "activation", [self.site.node])
        return out


def _fake_quant_input(chain: _Chain, x: gs.Tensor, rec) -> gs.Tensor:
    qmin, qmax = act_range(act_bits(rec))
    scale, offset = chain.const("quant.scale", rec.scale_d), float(rec.offset_d)
    y = chain.op("Div", x, [scale], "quant.scaled")
    y = chain.op("Round", y, [], "quant.rounded")
    if offset:
        y = chain.op("Add", y, [chain.const("quant.offset", offset)], "quant.shifted")
    bounds = [chain.const("quant.min", qmin), chain.const("quant.max", qmax)]
    y = chain.op("Clip", y, bounds, QUANT_OUT[1:])
    if offset:
        y = chain.op("Sub", y, [chain.const("quant.zero", offset)], "quant.centered")
    return chain.op("Mul", y, [scale], "dequant.out")
