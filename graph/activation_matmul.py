"""Find a MatMul between two activations (Q·Kᵀ, attention·V) by its config name.

Configs list such a MatMul as the layer ``"<module>.matmul_<k>"`` (``"matmul_<k>"`` at top
level): the ``k``-th MatMul, in graph order, whose ``qdqforge.module`` is ``<module>`` and
whose operands are both computed from the inputs (neither is an initializer, a ``Constant`` or
computed from constants only; :mod:`qdqforge.front.config.layers` counts them the same way).
Nodes that compute from constants only (a QAT weight quantizer on an initializer) count as
constants, so the layer keeps its ``k`` after the QAT passes have wrapped its operands.

The layer has two activations: input 0 keeps the layer's name (record ``scale_d``/``offset_d``,
tensor ``<layer>.quant.out``); input 1 is named ``<layer>.input_1`` (record ``scale_h``/
``offset_h``, AMCT's second-activation fields, tensor ``<layer>.input_1.quant.out``, QAT module
``<layer>.input_1.act_quant``).
"""

from __future__ import annotations

import dataclasses
import re

import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite, layer_site

SECOND_INPUT = ".input_1"
_NAME = re.compile(r"^(?:(?P<module>.*)\.)?matmul_(?P<index>\d+)$")


def is_activation_matmul(name: str) -> bool:
    """True when ``name`` has the form of an activation MatMul layer (module docstring)."""
    return _NAME.match(name) is not None


def second_input_name(layer: str) -> str:
    """``"<layer>.input_1"``: the name of input 1's quantizer and integers."""
    return layer + SECOND_INPUT


def layer_of_input(name: str) -> str:
    """The layer a quantizer named ``name`` belongs to (``<layer>.input_1`` -> ``<layer>``)."""
    layer = name.removesuffix(SECOND_INPUT)
    return layer if layer != name and is_activation_matmul(layer) else name


def quantized_inputs(site: LayerSite) -> list[tuple[int, str]]:
    """``[(input index, quantizer name)]`` of a layer: both operands of an activation MatMul."""
    if site.weight is None and site.node.op == "MatMul" and is_activation_matmul(site.name):
        return [(0, site.name), (1, second_input_name(site.name))]
    return [(0, site.name)]


def activation_matmul_site(graph: Graph, name: str) -> LayerSite | None:
    """The :class:`LayerSite` of the activation MatMul ``name`` (no weight), or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    module, index = match.group("module") or "", int(match.group("index"))
    found = [n for n in activation_matmuls(graph) if (graph.module_of(n) or "") == module]
    if index >= len(found):
        return None
    return LayerSite(name, found[index], None, None, -1)


def activation_matmuls(graph: Graph) -> list[gs.Node]:
    """Every MatMul of ``graph`` whose two operands are computed from the inputs, in order."""
    constant = {t.name for t in graph.gs.tensors().values() if isinstance(t, gs.Constant)}
    found = []
    for node in graph.gs.nodes:
        names = [t.name for t in node.inputs]
        if node.op == "Constant" or (names and all(n in constant for n in names)):
            constant.update(t.name for t in node.outputs)
        elif node.op == "MatMul" and not node.domain and not any(n in constant for n in names):
            found.append(node)
    return found


def second_input_record(record):
    """``record`` with input 1's grid (``scale_h``/``offset_h``) as ``scale_d``/``offset_d``."""
    return dataclasses.replace(record, scale_d=record.scale_h, offset_d=record.offset_h)


def recorded_inputs(graph: Graph, layer: str, record, user: str) -> tuple[LayerSite, list]:
    """``layer``'s site and ``[(input index, quantizer name, grid)]`` for every quantized input,
    ``grid`` being ``record`` with that input's scale/offset as ``scale_d``/``offset_d``.

    Raises:
        PassError: (from ``user``, the pass) the layer has no node, or an input has no grid.
    """
    site = layer_site(graph, layer) or activation_matmul_site(graph, layer)
    if site is None:
        raise PassError(f"{user}: layer '{layer}' has no node in the graph")
    found = []
    for index, name in quantized_inputs(site):
        grid = record if index == 0 else second_input_record(record)
        if grid.scale_d is None or grid.offset_d is None:
            fields = "scale_d/offset_d" if index == 0 else "scale_h/offset_h"
            raise PassError(f"{user}: layer '{layer}' has no {fields}")
        found.append((index, name, grid))
    return site, found
