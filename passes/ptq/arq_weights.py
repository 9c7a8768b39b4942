"""arq_weights: each enabled layer's weight -> its ARQ fake-quantized value (docs/amct.md §4.1).

Before / after::

    x -> Conv(W, B) -> y
    x -> Conv(W^, B) -> y          W^ = clamp(round(W / s_c), -2^(b-1), 2^(b-1)-1) * s_c

``s_c = max(|max_c|, |min_c|) / (2^(b-1) - 1)`` per output channel c (``channel_wise``) or one
for the tensor (``/ 2^(b-1)`` when ``|min| > |max|``), offset 0 (``kernels.arq``). The output
channel sits on axis 0 (Conv, Linear), 1 (ConvTranspose, grouped) or 1 of a ``[Cin, Cout]``
MatMul weight. ``b`` is the layer's weight ``num_bits`` (7 for 8-bit weights under the config's
``weight_reduce_range``). AMCT writes the fake-quantized weight into the modified ONNX so
calibration sees it. ``ctx.arq_weights.scale_w[layer]`` receives the scales (for the record's
``scale_w``).

A layer whose ``wts_algo`` is ``ada_quantize`` is quantized the same way here (AdaRound keeps
ARQ's scale, and calibration runs on these weights, as AMCT's does), and its float weight goes to
``ctx.arq_weights.ada_float_weights[layer]``: AdaRound learns its rounding from the calibration
inputs later (``front.ptq_adaround``), and ``ada_weights`` writes the result.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.detached import release_orphan
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.ptq.ptq_settings import enabled_layers
from qdqforge.runtime.kernels.arq import arq_quantize
from qdqforge.runtime.store import reading_tensor


@register_pass
class ArqWeightsPass(GraphPass, name="arq_weights"):
    """Fake-quantize the weight of every enabled layer with ARQ (symmetric min-max)."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"weights_quantized": 0, "disabled": 0, "no_weight": 0, "ada_pending": 0}
        scales, floats = ctx.arq_weights.scale_w, ctx.arq_weights.ada_float_weights
        taken = taken_names(graph)
        for layer in enabled_layers(ctx.config, stats):
            site, params = layer_site(graph, layer.name), layer.weight_quant_params
            if site is None or site.weight is None or params is None:
                stats["no_weight"] += 1
                continue
            if params.wts_algo == "ada_quantize":
                floats[layer.name] = np.asarray(site.weight.values).copy()
                stats["ada_pending"] += 1
            bits = ctx.config.weight_bits(layer)
            scales[layer.name] = _quantize(graph, site, bits, params.channel_wise, taken)
            stats["weights_quantized"] += 1
        return PassResult(graph, stats["weights_quantized"] > 0, stats)


def _quantize(
    graph: Graph, site: LayerSite, bits: int, channel_wise: bool, taken: set[str]
) -> tuple[float, ...]:
    w = reading_tensor(np.asarray(site.weight.values))  # arq_quantize only reads it
    axis = WEIGHT_AXIS[site.weight_layout]
    groups = site.groups if site.weight_layout == "ConvTranspose" else 1
    result = arq_quantize(w, bits, channel_wise, axis, groups, site.name)
    new = gs.Constant(unique_name(f"{site.weight.name}.arq", taken), result.weight.numpy())
    holder = (
        site.node if site.node.inputs[1] is site.weight else query.producer(site.node.inputs[1])
    )
    holder.inputs[holder.inputs.index(site.weight)] = new  # Linear on 3-D: the Transpose's input
    release_orphan(site.weight)
    if site.weight.name in graph.parameters:
        graph.add_parameters([new.name])
    graph.stamp(site.node, "arq_weights", "quantize_weight", [site.node], "replace")
    return tuple(float(s) for s in result.scale.tolist())
