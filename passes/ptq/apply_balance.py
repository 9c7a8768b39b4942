"""apply_balance: move DMQ balance factors into the weight and divide the activation by them.

Before / after (for each layer with factors ``s`` in ``ApplyBalanceOptions.factors``)::

    x -> Conv(W, B) -> y
    x -> Mul(x, 1/s) -> Conv(W', B) -> y                       (y unchanged)

Math (docs/amct.md §4.4), input channel j: ``W'[.., j, ..] = W[.., j, ..] * s_j`` on the weight's
input-channel axis (Conv ``[Cout, Cin/g, k...]``: channel ``j`` of group ``j // (Cin/g)`` is
read by that group's ``Cout/g`` filters; ConvTranspose axis 0; Linear axis 1; MatMul axis 0) and
``x'_j = x_j / s_j`` (``1/s`` shaped ``[1, C, 1...]`` for conv, ``[C]`` for Gemm/MatMul), so
``Conv(x', W') == Conv(x, W)``. Node and constant names follow AMCT: ``<layer>.mul``,
``<layer>.tensor_balance_factor`` (which holds ``1/s``), weight ``<weight>.balanced``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass


@dataclass(frozen=True)
class ApplyBalanceOptions:
    """``factors``: ``{layer: tensor_balance_factor}``, one factor per input channel."""

    factors: Mapping[str, Sequence[float]] = field(default_factory=dict)


@register_pass
class ApplyBalancePass(GraphPass[ApplyBalanceOptions], name="apply_balance"):
    """Fold DMQ balance factors into layer weights and insert Mul(1/s) on their inputs."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        factors = self.options.factors
        taken = taken_names(graph)
        for layer, values in factors.items():
            site = _site(graph, layer)
            _apply(graph, site, _checked(site, values), taken)
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, bool(factors), {"layers_balanced": len(factors)})


def _site(graph: Graph, layer: str) -> LayerSite:
    site = layer_site(graph, layer)
    if site is None or site.weight is None:
        raise PassError(f"apply_balance: layer '{layer}' has no weighted Conv/Gemm/MatMul node")
    return site


def _checked(site: LayerSite, values) -> np.ndarray:
    s = np.asarray(values, np.float64).reshape(-1)
    cin = _input_channels(site)
    if s.size != cin or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise PassError(
            f"apply_balance: layer '{site.name}' needs {cin} positive finite "
            f"tensor_balance_factor values, got {s.size}"
        )
    return s


def _input_channels(site: LayerSite) -> int:
    shape = site.weight.values.shape
    layout = site.weight_layout
    if layout == "Conv":
        return shape[1] * site.groups
    return shape[1] if layout == "Linear" else shape[0]


def scaled_weight(site: LayerSite, s: np.ndarray) -> np.ndarray:
    """``W * s`` on the weight's input-channel axis (module docstring), in W's dtype."""
    w = np.asarray(site.weight.values)
    tail = [1] * (w.ndim - 2)
    if site.weight_layout == "Conv":
        per_filter = np.repeat(s.reshape(site.groups, -1), w.shape[0] // site.groups, axis=0)
        factor = per_filter.reshape(w.shape[0], w.shape[1], *tail)
    elif site.weight_layout == "Linear":
        factor = s.reshape(1, -1)
    else:  # ConvTranspose [Cin, Cout/g, k...], MatMul [Cin, Cout]
        factor = s.reshape(-1, 1, *tail)
    return (w.astype(np.float64) * factor).astype(w.dtype)


def _apply(graph: Graph, site: LayerSite, s: np.ndarray, taken: set[str]) -> None:
    dtype = np.asarray(site.weight.values).dtype
    w_new = gs.Constant(unique_name(f"{site.weight.name}.balanced", taken), scaled_weight(site, s))
    holder = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    holder.inputs[holder.inputs.index(site.weight)] = w_new
    if site.weight.name in graph.parameters:
        graph.add_parameters([w_new.name])
    rank = np.asarray(site.weight.values).ndim
    shape = (1, -1, *[1] * (rank - 2)) if site.channel_axis == 1 else (-1,)
    inv = gs.Constant(
        unique_name(f"{site.name}.tensor_balance_factor", taken),
        (1.0 / s).reshape(shape).astype(dtype),
    )
    x = site.activation
    out = gs.Variable(unique_name(f"{x.name}.balanced", taken), dtype=x.dtype, shape=x.shape)
    mul = gs.Node("Mul", unique_name(f"{site.name}.mul", taken), inputs=[x, inv], outputs=[out])
    graph.gs.nodes.append(mul)
    site.node.inputs[0] = out
    graph.stamp(mul, "apply_balance", "divide_input", [site.node])
    graph.stamp(site.node, "apply_balance", "scale_weight", [site.node], "replace")
