"""integer_layers: run each recorded Conv/Linear layer on integers, AMCT deploy style (spec §5).

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
from qdqforge.passes.base import GraphPass, PassContext, PassResult
from qdqforge.passes.bias_int32 import int32_bias
from qdqforge.passes.integer_weights import IntegerLayer, integer_layer
from qdqforge.passes.registry import register_pass


def integer_capable(graph: Graph, site: LayerSite | None, rec) -> bool:
    """True when ``integer_layers`` can rewrite the layer (Conv, plain Gemm, weight MatMul)."""
    return integer_layer(graph, site, rec) is not None


@register_pass
class IntegerLayersPass(GraphPass):
    """Rewrite recorded Conv/Linear layers as ConvInteger/MatMulInteger with int32 bias."""

    name = "integer_layers"

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = ctx.options_for(self.name).get("records", {})
        taken = taken_names(graph)
        for layer, rec in records.items():
            found = integer_layer(graph, layer_site(graph, layer), rec)
            if found is None:
                raise PassError(f"integer_layers: layer '{layer}' has no integer form")
            _rewrite(graph, found, taken)
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, bool(records), {"integer_layers": len(records)})


def _rewrite(graph: Graph, layer: IntegerLayer, taken: set[str]) -> None:
    name = layer.site.name

    def const(tag: str, value: np.ndarray) -> gs.Constant:
        return gs.Constant(unique_name(f"{name}.{tag}", taken), value)

    def var(tag: str, dtype) -> gs.Variable:
        return gs.Variable(unique_name(f"{name}.{tag}", taken), dtype=dtype)

    zero_point = const("quant.offset", np.asarray(layer.offset_d, np.int8))
    q_x, acc = var("quant.out", np.int8), var("int32_out", np.int32)
    nodes = [
        gs.Node(
            "QuantizeLinear",
            unique_name(f"{name}.quant", taken),
            inputs=[layer.site.activation, const("quant.scale", layer.scale_d), zero_point],
            outputs=[q_x],
        ),
        gs.Node(
            layer.integer_op,
            unique_name(f"{name}.integer", taken),
            layer.attrs,
            [q_x, const("weight_int8", layer.weight_q), zero_point],
            [acc],
        ),
    ]
    if layer.bias is not None:
        bias_q = int32_bias(name, layer.bias, layer.dequant_scale).reshape(
            layer.dequant_scale.shape
        )
        summed = var("int32_biased", np.int32)
        nodes.append(
            gs.Node(
                "Add",
                unique_name(f"{name}.bias_add", taken),
                {},
                [acc, const("bias_int32", bias_q)],
                [summed],
            )
        )
        acc = summed
    as_float = var("int32_as_float", np.float32)
    nodes.append(gs.Node("Cast", unique_name(f"{name}.cast", taken), {"to": 1}, [acc], [as_float]))
    output = layer.output
    layer.output_node.outputs.clear()  # the old layer (and its bias Add) now produce nothing
    nodes.append(
        gs.Node(
            "Mul",
            unique_name(f"{name}.dequant", taken),
            {},
            [as_float, const("dequant_scale", layer.dequant_scale)],
            [output],
        )
    )
    layer.site.node.outputs.clear()
    for node in nodes:
        graph.gs.nodes.append(node)
        graph.stamp(node, "integer_layers", "int8_" + layer.site.node.op.lower(), [layer.site.node])
