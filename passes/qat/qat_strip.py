"""qat_strip: remove every QAT node, giving back the float graph (used when saving QAT models).

Before / after::

    x -> UlqActQuant -> Conv(ArqRetrainWeight(W)) -> [BN] -> y' -> SearchN -> y
    x -> Conv(W) -> [BN] -> y

Each ``qdqforge`` QAT node (UlqActQuant, ArqRetrainWeight, UlqRetrainWeight, SearchN) is an
identity on its input 0 when quantization is off; its readers read that input instead. When the
output is a graph output, the producer of the input writes it, so output names survive. Float
weights and BN statistics are whatever the graph's initializers hold (``save_quant_retrain_model``
writes the trained values in first).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.qdqforge_ops import DOMAIN
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.qat.retrain_layers import QAT_OP_TYPES


@register_pass
class QatStripPass(GraphPass, name="qat_strip"):
    """Remove the QAT nodes (activation, weight and search-N) and rewire their inputs."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {op: 0 for op in sorted(QAT_OP_TYPES)}
        for node in [n for n in graph.gs.nodes if n.domain == DOMAIN and n.op in QAT_OP_TYPES]:
            bypass(graph, node)
            stats[node.op] += 1
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, sum(stats.values()) > 0, stats)


def bypass(graph: Graph, node: gs.Node) -> None:
    """Replace ``node`` by a wire from its input 0 to the readers of its output 0."""
    source, result = node.inputs[0], node.outputs[0]
    writer = query.producer(source)
    is_output = any(t is result for t in graph.gs.outputs)
    node.inputs.clear()
    node.outputs.clear()
    if is_output and writer is not None and not source.outputs:
        writer.outputs[writer.outputs.index(source)] = result  # the output keeps its name
        return
    for reader in list(result.outputs):
        reader.inputs[reader.inputs.index(result)] = source
    outputs = graph.gs.outputs
    outputs[:] = [source if t is result else t for t in outputs]
