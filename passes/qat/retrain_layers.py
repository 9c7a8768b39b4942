"""What the QAT passes share: the config values they read and the walk over ``retrain_enable``
layers.

Every QAT node lives in the ``qdqforge`` domain (op types and attributes:
:mod:`qdqforge.graph.qdqforge_ops`) and carries the torch layer name in its ``layer`` attribute;
the runtime registers its module at ``<layer>.act_quant``, ``<layer>.weight_quant`` or
``<layer>.search_n`` (:mod:`qdqforge.runtime.converters.qdqforge_qat`). Passes never import
``front``: the Protocols below state the part of a retrain config they use, and ``front`` hands
its ``RetrainConfig`` in through ``PassContext.config`` (it matches them structurally).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph import query
from qdqforge.graph.activation_matmul import activation_matmul_site
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site
from qdqforge.graph.qdqforge_ops import DOMAIN, QAT_OPS

QAT_OP_TYPES = frozenset(schema.op for schema in QAT_OPS)


@runtime_checkable
class RetrainDataSettings(Protocol):
    """A layer's activation QAT settings."""

    @property
    def clip_max(self) -> float | None: ...
    @property
    def clip_min(self) -> float | None: ...
    @property
    def fixed_min(self) -> bool | None: ...
    @property
    def dst_type(self) -> str: ...


@runtime_checkable
class RetrainWeightSettings(Protocol):
    """A layer's weight QAT settings."""

    @property
    def algo(self) -> str: ...
    @property
    def channel_wise(self) -> bool: ...


@runtime_checkable
class RetrainLayerSettings(Protocol):
    """One layer of a retrain config."""

    @property
    def name(self) -> str: ...
    @property
    def retrain_enable(self) -> bool: ...
    @property
    def retrain_data_config(self) -> RetrainDataSettings: ...
    @property
    def retrain_weight_config(self) -> RetrainWeightSettings | None: ...


@runtime_checkable
class RetrainSettings(Protocol):
    """A retrain config: its layers in order and the global values the passes need."""

    @property
    def batch_num(self) -> int: ...
    @property
    def layers(self) -> Sequence[RetrainLayerSettings]: ...
    def weight_bits(self, layer: RetrainLayerSettings) -> int:
        """Bit width of ``layer``'s weight grid."""


def dst_bits(dst_type: str) -> int:
    """``"INT8"`` -> 8, ``"INT4"`` -> 4."""
    return int(dst_type.removeprefix("INT"))


def retrain_sites(
    graph: Graph, config: RetrainSettings | None, stats: dict[str, int], pass_name: str
) -> Iterator[tuple[RetrainLayerSettings, LayerSite]]:
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
