"""act_quant: the record's activation quantizer in front of each layer (the PTQ reference model).

Before / after (layer with ``scale_d``/``offset_d`` in options ``records``)::

    x -> Conv(W^, B) -> y
    x -> qdqforge::ActQuant(layer, scale=s_d, offset=o_d, num_bits) -> Conv(W^, B) -> y

``ActQuant`` computes ``(clamp(round(x / s_d) + o_d, qmin, qmax) - o_d) * s_d`` in the runtime,
with the kernel call the ``quantize_model`` calibration module makes once its observers are
calibrated. Applied to the modified ONNX (whose weights ``W^`` are already on their grid), the
reimported graph is that calibration module rebuilt from its two files: ``save_model`` checks the
written models against it. The bit width comes from the record's ``act_type`` (``act_grid``).
A MatMul between two activations (``<module>.matmul_<k>``) gets one on each operand, input 1's
(``layer`` ``<layer>.input_1``) on the record's ``scale_h``/``offset_h``
(:mod:`qdqforge.graph.activation_matmul`).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from qdqforge.graph.activation_matmul import recorded_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import ACT_QUANT, DOMAIN
from qdqforge.graph.toposort import toposort
from qdqforge.passes.grids.act_grid import act_bits
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.quantized.record_options import RecordOptions


@register_pass
class ActQuantPass(GraphPass[RecordOptions], name="act_quant"):
    """Put each recorded layer's fixed activation quantizer (qdqforge::ActQuant) before it."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        records = self.options.records
        taken = taken_names(graph)
        for layer, rec in records.items():
            site, inputs = recorded_inputs(graph, layer, rec, self.name)
            for index, name, grid in inputs:
                _insert(graph, site, index, name, grid, taken)
        toposort(graph)
        return PassResult(graph, bool(records), {"quantizers": len(records)})


def _insert(graph: Graph, site: LayerSite, index: int, name: str, rec, taken: set[str]) -> None:
    x = site.node.inputs[index]  # the quantizer keeps the type and shape (shape inference)
    out = gs.Variable(unique_name(f"{name}.act_quant.out", taken), x.dtype, x.shape)
    attrs = {
        "layer": name,
        "scale": float(rec.scale_d),
        "offset": int(rec.offset_d),
        "num_bits": act_bits(rec),
    }
    node = gs.Node(
        ACT_QUANT.op, unique_name(f"{name}.act_quant", taken), attrs, [x], [out], domain=DOMAIN
    )
    graph.gs.nodes.append(node)
    graph.stamp(node, ActQuantPass.name, "activation", [site.node])
    site.node.inputs[index] = out
