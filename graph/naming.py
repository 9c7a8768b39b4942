"""Deterministic names for what passes create.

Names derive from the tensor or node they annotate (``{tensor}/QuantizeLinear``) instead of gs's
counters, so the same rewrite of the same graph always yields the same file.
"""

from __future__ import annotations

import re

from qdqforge.graph.ir import Graph

_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]")


def taken_names(graph: Graph) -> set[str]:
    """Every node and tensor name in use."""
    names = {n.name for n in graph.gs.nodes}
    names.update(graph.gs.tensors().keys())
    return names


def unique_name(base: str, taken: set[str]) -> str:
    """``base`` if free, else ``base_1``, ``base_2``, ...; the result is added to ``taken``."""
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    taken.add(name)
    return name


def uniquify_node_names(graph: Graph) -> int:
    """Give every unnamed or duplicate node a unique name; returns how many were renamed.

    Metadata moves with the node: the first holder of a name keeps it.
    """
    seen: set[str] = set()
    taken = taken_names(graph)
    renamed = 0
    for node in graph.gs.nodes:
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        old = node.name
        node.name = unique_name(old or f"{node.op}_node", taken)
        if old in graph.node_meta:
            graph.node_meta[node.name] = dict(graph.node_meta[old])
        seen.add(node.name)
        renamed += 1
    return renamed


def sanitize_identifier(name: str) -> str:
    """Map any string to a Python identifier (``onnx::Conv_12`` -> ``onnx__Conv_12``)."""
    ident = _NOT_IDENT.sub("_", name) or "_"
    return f"_{ident}" if ident[0].isdigit() else ident
