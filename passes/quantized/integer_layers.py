"""integer_layers: each recorded Conv/Linear layer on integers, AMCT deploy style (docs/amct.md §5).

Before / after (layer with ``scale_d``/``offset_d``/``scale_w`` in options ``records``)::

    x -> Conv(W, B) -> y
    x -> QuantizeLinear(s_d, o) -> ConvInteger(q_x, W_q, o) -> Add(B_q) -> Cast(float)
      -> Mul(s_d * s_w) -> y

Math: ``q_x = clamp(round(x / s_d) + o, -128, 127)``, ``W_q = round(W / s_w)`` per output
channel (int8 initializer), ``B_q = round(B / (s_d * s_w))`` (int32 initializer) and
``y = (sum (q_x - o) * W_q + B_q) * s_d * s_w``: AMCT's Quant -> int8 layer -> Dequant, and the
fake-quant model's value up to float summation order and the bias rounding (<= s_d*s_w/2).
Linear layers become MatMulInteger with the int8 weight stored pre-transposed ``[Cin, Cout]``;
the bias of a MatMul is the constant ``Add`` that follows it. ConvTranspose and AveragePool have
no integer op in ONNX: ``insert_qdq`` handles them. ``B_q`` outside int32 is a
QuantizationError (``bias_int32``).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.grids.bias_int32 import int32_bias
from qdqforge.passes.grids.integer_weights import IntegerLayer, has_integer_form, integer_layer
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.quantized.record_options import RecordOptions


def integer_capable(graph: Graph, site: LayerSite | None, rec) -> bool:
    """True when ``integer_layers`` can rewrite the layer (Conv, plain Gemm, weight MatMul);
    the integers are computed by the pass, not here."""
    return has_integer_form(graph, site, rec)


@register_pass
class IntegerLayersPass(GraphPass[RecordOptions], name="integer_layers"):
    """Rewrite recorded Conv/Linear layers as ConvInteger/MatMulInteger with int32 bias."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = self.options.records
        taken = taken_names(graph)
        for layer, rec in records.items():
            found = integer_layer(graph, layer_site(graph, layer), rec)
            if found is None:
                raise PassError(f"integer_layers: layer '{layer}' has no integer form")
            _rewrite(graph, found, taken)
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, bool(records), {"integer_layers": len(records)})


class _Builder:
    """Creates the rewrite's nodes and tensors under ``<layer>.`` names, stamped as this pass's."""

    def __init__(self, graph: Graph, layer: IntegerLayer, taken: set[str]) -> None:
        self.graph, self.layer, self.taken = graph, layer, taken

    def name(self, tag: str) -> str:
        return unique_name(f"{self.layer.site.name}.{tag}", self.taken)

    def const(self, tag: str, value: np.ndarray) -> gs.Constant:
        return gs.Constant(self.name(tag), np.asarray(value))

    def node(self, op: str, tag: str, inputs, out, attrs=None) -> gs.Tensor:
        """Append ``op`` reading ``inputs``; ``out`` is an output tensor or its (tag, dtype)."""
        if not isinstance(out, gs.Tensor):
            out = gs.Variable(self.name(out[0]), dtype=out[1])
        node = gs.Node(op, self.name(tag), attrs or {}, list(inputs), [out])
        self.graph.gs.nodes.append(node)
        origin = self.layer.site.node
        self.graph.stamp(node, "integer_layers", "int8_" + origin.op.lower(), [origin])
        return out


def _rewrite(graph: Graph, layer: IntegerLayer, taken: set[str]) -> None:
    b, output = _Builder(graph, layer, taken), layer.output
    layer.output_node.outputs.clear()  # the float layer (and a MatMul's bias Add) go dead
    layer.site.node.outputs.clear()
    zero_point = b.const("quant.offset", np.int8(layer.offset_d))
    scale = b.const("quant.scale", layer.scale_d)
    q_x = b.node("QuantizeLinear", "quant", [layer.site.activation, scale, zero_point],
                 ("quant.out", np.int8))  # fmt: skip
    weight = b.const("weight_int8", layer.weight_q)
    acc = b.node(layer.integer_op, "integer", [q_x, weight, zero_point], ("int32_out", np.int32),
                 layer.attrs)  # fmt: skip
    if layer.bias is not None:
        bias_q = int32_bias(layer.site.name, layer.bias, layer.dequant_scale)
        bias = b.const("bias_int32", bias_q.reshape(layer.dequant_scale.shape))
        acc = b.node("Add", "bias_add", [acc, bias], ("int32_biased", np.int32))
    as_float = b.node("Cast", "cast", [acc], ("int32_as_float", np.float32), {"to": 1})
    b.node("Mul", "dequant", [as_float, b.const("dequant_scale", layer.dequant_scale)], output)
