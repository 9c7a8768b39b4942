"""What the QAT passes share: the custom op names and the walk over ``retrain_enable`` layers.

Every QAT node lives in the ``qdqforge`` domain and carries the torch layer name in its ``layer``
attribute; the runtime registers its module at ``<layer>.act_quant``, ``<layer>.weight_quant``
or ``<layer>.search_n`` (:mod:`qdqforge.runtime.converters.qdqforge_qat`).
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.front.config.qat import RetrainConfig, RetrainLayerConfig
from qdqforge.graph import query
from qdqforge.graph.activation_matmul import activation_matmul_site
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site

DOMAIN = "qdqforge"
ACT_OP = "UlqActQuant"
WEIGHT_OPS = {"arq_retrain": "ArqRetrainWeight", "ulq_retrain": "UlqRetrainWeight"}
SEARCH_N_OP = "SearchN"
QAT_OPS = frozenset({ACT_OP, SEARCH_N_OP, *WEIGHT_OPS.values()})


def dst_bits(dst_type: str) -> int:
    """``"INT8"`` -> 8, ``"INT4"`` -> 4."""
    return int(dst_type.removeprefix("INT"))


def retrain_sites(
    graph: Graph, config: RetrainConfig | None, stats: dict[str, int], pass_name: str
) -> Iterator[tuple[RetrainLayerConfig, LayerSite]]:
    """Every ``retrain_enable`` layer of ``config`` with its site in ``graph``.

    Disabled layers are counted in ``stats["disabled"]``; MatMuls between two activations
    (``<module>.matmul_<k>``, :mod:`qdqforge.graph.activation_matmul`) are yielded with a
    weightless site and counted in ``stats["activation_matmul"]``.

    Raises:
        PassError: an enabled layer has no node in the graph.
    """
    for layer in config.layers if config is not None else ():
        site = layer_site(graph, layer.name) if layer.retrain_enable else None
        if layer.retrain_enable and site is None:
            site = activation_matmul_site(graph, layer.name)
            stats["activation_matmul"] = stats.get("activation_matmul", 0) + (site is not None)
        if not layer.retrain_enable:
            stats["disabled"] = stats.get("disabled", 0) + 1
        elif site is None:
            raise PassError(f"{pass_name}: layer '{layer.name}' has no node in the graph")
        else:
            yield layer, site


def qat_producer(tensor: gs.Tensor, op: str | frozenset[str]) -> gs.Node | None:
    """The QAT node of type ``op`` writing ``tensor``, looking through one Transpose."""
    ops = {op} if isinstance(op, str) else op
    node = query.producer(tensor)
    if node is not None and node.op == "Transpose" and not node.domain:
        node = query.producer(node.inputs[0])
    return node if node is not None and node.domain == DOMAIN and node.op in ops else None
