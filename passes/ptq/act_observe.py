"""act_observe: put an activation calibration observer (IFMR or HFMG) in front of every layer.

Before / after (each enabled layer of the config)::

    x -> [Mul(1/s)] -> Conv(W, B) -> y
    x -> [Mul(1/s)] -> qdqforge::ActObserver(x) -> x' -> Conv(W, B) -> y

The observer sits on the layer's own input edge, so with DMQ it sees ``X / s`` (docs/amct.md §4.4:
the activation scale is computed on the balanced input). The runtime feeds the first ``batch_num``
forwards to IFMR (docs/amct.md §4.2) or HFMG (§4.3) and then holds ``scale_d``/``offset_d``;
activations stay float during calibration (§4.1): ``x' == x`` for those forwards, and afterwards
``x'`` is ``x`` fake-quantized on that grid.

Attributes: ``layer``, ``algo`` (ifmr|hfmg), ``num_bits``, ``symmetric`` (0/1, from
``activation_offset``/``asymmetric``), ``batch_num``; IFMR: ``max_percentile``,
``min_percentile``, ``search_range`` (2 floats), ``search_step``; HFMG: ``num_of_bins``.
A MatMul between two activations (``<module>.matmul_<k>``, :mod:`qdqforge.graph.activation_matmul`)
gets one observer on each operand, with the layer's settings; input 1's has ``layer``
``<module>.matmul_<k>.input_1`` (its grid goes to the record's ``scale_h``/``offset_h``)::

    a, b -> MatMul -> y
    a -> ActObserver -> a';  b -> ActObserver(layer=<layer>.input_1) -> b';  a', b' -> MatMul -> y
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph.activation_matmul import activation_matmul_site, quantized_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.qdqforge_ops import ACT_OBSERVER, DOMAIN
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass
from qdqforge.passes.ptq.ptq_settings import PtqLayerSettings, PtqSettings, enabled_layers


@register_pass
class ActObservePass(GraphPass, name="act_observe"):
    """Insert an identity IFMR/HFMG activation observer before every enabled layer."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        stats = {"observers_inserted": 0, "disabled": 0, "activation_matmul": 0}
        taken = taken_names(graph)
        for layer in enabled_layers(ctx.config, stats):
            site = layer_site(graph, layer.name) or activation_matmul_site(graph, layer.name)
            if site is None:
                raise PassError(f"act_observe: layer '{layer.name}' has no node in the graph")
            stats["activation_matmul"] += len(quantized_inputs(site)) > 1
            for index, name in quantized_inputs(site):
                attrs = observer_attrs(ctx.config, layer) | {"layer": name}
                _insert(graph, site, index, attrs, taken)
                stats["observers_inserted"] += 1
        toposort(graph)
        return PassResult(graph, stats["observers_inserted"] > 0, stats)


def observer_attrs(config: PtqSettings, layer: PtqLayerSettings) -> dict:
    """ONNX attributes of the observer of ``layer`` (module docstring)."""
    act = layer.activation_quant_params
    attrs = {
        "layer": layer.name,
        "algo": act.act_algo,
        "num_bits": act.num_bits,
        "symmetric": int(not config.with_offset(layer)),
        "batch_num": config.batch_num,
    }
    if act.act_algo == "hfmg":
        attrs["num_of_bins"] = int(act.num_of_bins)
    else:
        attrs["max_percentile"] = float(act.max_percentile)
        attrs["min_percentile"] = float(act.min_percentile)
        attrs["search_range"] = [float(v) for v in act.search_range]
        attrs["search_step"] = float(act.search_step)
    return attrs


def _insert(graph: Graph, site: LayerSite, index: int, attrs: dict, taken: set[str]) -> None:
    x = site.node.inputs[index]
    out = gs.Variable(unique_name(f"{x.name}.observed", taken), dtype=x.dtype, shape=x.shape)
    name = unique_name(f"{attrs['layer']}.act_observer", taken)
    node = gs.Node(ACT_OBSERVER.op, name, attrs, [x], [out], domain=DOMAIN)
    graph.gs.nodes.append(node)
    site.node.inputs[index] = out
    graph.stamp(node, "act_observe", "observe_" + site.node.op.lower(), [site.node])
