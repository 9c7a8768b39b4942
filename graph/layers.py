"""Find the ONNX node that runs a torch layer, and the facts passes need about it.

A layer is the node whose ``qdqforge.module`` metadata is the layer's torch name and whose op is
quantizable (Conv, ConvTranspose, Gemm, MatMul, AveragePool; docs/amct.md §4.7). Its
activation is input 0; its weight is input 1, or the constant behind a ``Transpose`` when a
Linear on a 3-D input was exported as ``MatMul(x, Transpose(W))``.

``weight_layout`` names the stored weight's layout for :mod:`qdqforge.runtime.calibration.dmq`:
``Conv`` ``[Cout, Cin/g, k...]``, ``ConvTranspose`` ``[Cin, Cout/g, k...]``, ``Linear``
``[Cout, Cin]`` (Gemm transB=1, MatMul of a transposed weight), ``MatMul`` ``[Cin, Cout]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.ir import Graph

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "AveragePool")
# The stored weight's output-channel axis, per ``weight_layout`` (module docstring).
WEIGHT_AXIS = {"Conv": 0, "Linear": 0, "ConvTranspose": 1, "MatMul": 1}


@dataclass(frozen=True)
class LayerSite:
    """Where a torch layer lives in the graph.

    Attributes:
        name: torch module name.
        node: the Conv/ConvTranspose/Gemm/MatMul/AveragePool node.
        weight: the stored weight constant (None for AveragePool or activation MatMuls).
        weight_layout: ``Conv``, ``ConvTranspose``, ``Linear`` or ``MatMul`` (module docstring).
        channel_axis: input-channel axis of the activation (1 for conv/pool, -1 for Gemm/MatMul).
        groups: convolution groups (1 otherwise).
    """

    name: str
    node: gs.Node
    weight: gs.Constant | None
    weight_layout: str | None
    channel_axis: int
    groups: int = 1

    @property
    def activation(self) -> gs.Tensor:
        """The tensor the layer reads as its data input."""
        return self.node.inputs[0]


def find_layer_node(graph: Graph, layer: str) -> gs.Node | None:
    """First node of a quantizable op whose ``qdqforge.module`` is ``layer`` (call suffix off)."""
    for node in graph.gs.nodes:
        module = graph.module_of(node)
        if node.op in LAYER_OPS and module and module == layer:
            return node
    return None


def layer_site(graph: Graph, layer: str) -> LayerSite | None:
    """The :class:`LayerSite` of ``layer``, or None when no quantizable node carries its name."""
    node = find_layer_node(graph, layer)
    if node is None:
        return None
    weight = query.weight_of(node) if node.op != "AveragePool" else None
    groups = int(node.attrs.get("group", 1))
    axis = 1 if node.op in ("Conv", "ConvTranspose", "AveragePool") else -1
    return LayerSite(layer, node, weight, _weight_layout(node, weight), axis, groups)


def _weight_layout(node: gs.Node, weight: gs.Constant | None) -> str | None:
    if weight is None:
        return None
    if node.op in ("Conv", "ConvTranspose"):
        return node.op
    if node.op == "Gemm":
        return "Linear" if node.attrs.get("transB", 0) else "MatMul"
    # MatMul: a constant [Cin, Cout] operand, or W [Cout, Cin] behind Transpose(perm=[1, 0]).
    return "MatMul" if node.inputs[1] is weight else "Linear"
