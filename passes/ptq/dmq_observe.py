"""dmq_observe: put a DMQ statistics observer in front of every layer that asks for DMQ balancing.

Before / after (for each enabled layer with ``dmq_balancer_param`` alpha)::

    x -> Conv(W, B) -> y
    x -> qdqforge::DmqObserver(x, w_max) -> x' -> Conv(W, B) -> y          (x' == x)

The observer is an identity: the runtime (``runtime/converters/qdqforge_observers.py``) tracks
``a_j = max |X|`` per input channel j over every forward; together with the constant input
``w_max[j] = max |W|`` over the weights reading channel j (taken from the graph's weight, i.e.
after fold_bn) it gives AMCT's factor ``s_j = a_j^alpha / w_j^(1 - alpha)`` (docs/amct.md §4.4).

Node attributes: ``layer`` (torch name), ``alpha``, ``channel_axis`` (1 conv, -1 Gemm/MatMul),
``op_type`` (weight layout: Conv/ConvTranspose/Linear/MatMul), ``groups``. Only the layer's own
input edge is rewired; other readers of ``x`` keep reading ``x``.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import DMQ_OBSERVER, DOMAIN
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.ptq.ptq_settings import ptq_layers
from qdqforge.runtime.calibration.dmq import weight_input_channel_absmax
from qdqforge.runtime.store import reading_tensor

log = logging.getLogger(__name__)


@register_pass
class DmqObservePass(GraphPass, name="dmq_observe"):
    """Insert an identity DMQ observer before every layer with dmq_balancer_param."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"observers_inserted": 0, "disabled": 0, "no_dmq": 0}
        taken = taken_names(graph)
        for layer in ptq_layers(ctx.config):
            if layer.dmq_balancer_param is None:
                stats["no_dmq"] += 1
            elif not layer.quant_enable:
                stats["disabled"] += 1
            else:
                _insert(graph, _site(graph, layer.name), layer.dmq_balancer_param, taken)
                stats["observers_inserted"] += 1
        toposort(graph)
        log.debug("dmq_observe: %s", stats)
        return PassResult(graph, stats["observers_inserted"] > 0, stats)


def _site(graph: Graph, layer: str) -> LayerSite:
    site = layer_site(graph, layer)
    if site is None or site.weight is None:
        raise PassError(f"dmq_observe: layer '{layer}' has no weighted Conv/Gemm/MatMul node")
    if site.node.op == "Gemm" and site.node.attrs.get("transA", 0):
        raise PassError(f"dmq_observe: layer '{layer}' is a Gemm with transA=1 (unsupported)")
    return site


def weight_max(site: LayerSite) -> np.ndarray:
    """``max |W|`` per input channel of the layer's current weight (float32 ``[Cin]``)."""
    w = reading_tensor(np.asarray(site.weight.values, np.float32))  # only read
    return weight_input_channel_absmax(w, site.weight_layout, site.groups).numpy()


def _insert(graph: Graph, site: LayerSite, alpha: float, taken: set[str]) -> None:
    x = site.activation
    w_max = gs.Constant(unique_name(f"{site.name}.dmq_weight_max", taken), weight_max(site))
    out = gs.Variable(unique_name(f"{x.name}.dmq", taken), dtype=x.dtype, shape=x.shape)
    attrs = {
        "layer": site.name,
        "alpha": float(alpha),
        "channel_axis": site.channel_axis,
        "op_type": site.weight_layout,
        "groups": site.groups,
    }
    name = unique_name(f"{site.name}.dmq_observer", taken)
    node = gs.Node(DMQ_OBSERVER.op, name, attrs, [x, w_max], [out], domain=DOMAIN)
    graph.gs.nodes.append(node)
    site.node.inputs[0] = out
    graph.stamp(node, "dmq_observe", "observe_" + site.node.op.lower(), [site.node])
