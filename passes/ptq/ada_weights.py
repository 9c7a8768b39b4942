"""ada_weights: put each ``ada_quantize`` layer's AdaRound-rounded weight in place of ARQ's.

Before / after (the modified ONNX, once calibration has run AdaRound)::

    x -> Conv(W^arq, B) -> y       W^arq = s * round(W / s)               (arq_weights)
    x -> Conv(W^ada, B) -> y       W^ada = s * (floor(W / s) + r),  r in {0, 1} learnt

``r`` minimises the layer output reconstruction ``||X W^ada^T - X W^T||^2`` over the layer's
calibration inputs ``X`` (AdaRound, ``runtime.kernels.adaround``); ``s`` is ARQ's scale, so the
record's ``scale_w``/``offset_w`` stay as written and ``rint(W^ada / s)`` is the integer weight
the fake-quant and deploy models store. The initializer keeps its name (``<weight>.arq``) and
shape; only its values change.

Options (``AdaWeightsOptions``): ``weights``: ``{layer: array}`` in the stored weight's layout
and dtype.
Stats: ``layers_rounded``, ``values_changed`` (weights that differ from ARQ's), ``no_weight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from qdqforge.errors import PassError
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import layer_site
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass


@dataclass(frozen=True)
class AdaWeightsOptions:
    """``weights``: ``{layer: rounded weight}`` in the stored weight's layout and dtype."""

    weights: Mapping[str, np.ndarray] = field(default_factory=dict)


@register_pass
class AdaWeightsPass(GraphPass[AdaWeightsOptions], name="ada_weights"):
    """Replace the ARQ weights of ada_quantize layers by their AdaRound-rounded values."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"layers_rounded": 0, "values_changed": 0, "no_weight": 0}
        for layer, values in self.options.weights.items():
            site = layer_site(graph, layer)
            if site is None or site.weight is None:
                stats["no_weight"] += 1
                continue
            old = np.asarray(site.weight.values)
            new = np.asarray(values, dtype=old.dtype)
            if new.shape != old.shape:
                raise PassError(
                    f"ada_weights: layer '{layer}' weight {site.weight.name} has shape "
                    f"{list(old.shape)}, the rounded weight {list(new.shape)}"
                )
            site.weight.values = new
            graph.stamp(site.node, self.name, "round_weight", [site.node], "replace")
            stats["layers_rounded"] += 1
            stats["values_changed"] += int(np.count_nonzero(new != old))
        return PassResult(graph, stats["layers_rounded"] > 0, stats)
