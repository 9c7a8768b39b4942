"""Pattern ``Squeeze(Slice(x, i, i+1, axis), axis)`` -> ``x.select(axis, i)``, or ``unbind``.

Exporters write ``q, k, v = t.unbind(2)`` as one unit Slice + Squeeze per part. When the parts
cover the whole axis the pattern emits ONE ``torch.unbind`` shared by all of them (the original
kernel, one backward ``stack``); otherwise each part is a ``select`` (one op instead of two).
"""

from __future__ import annotations

import torch

from qdqforge.runtime.registry import Emitter, GraphView, OnnxNode, pattern_converter


def unit_slice(node: OnnxNode, graph: GraphView) -> tuple[int, int] | None:
    """(axis, index) of a Slice that keeps one element along one axis, from constants."""
    if node.op_type != "Slice" or node.domain or len(node.inputs) < 4:
        return None
    values = [graph.initializer(n) if n else None for n in node.inputs[1:5]]
    if any(v is None for v in values[:3]) or any(v.size != 1 for v in values[:3]):
        return None
    if values[3:] and values[3] is not None and int(values[3].reshape(-1)[0]) != 1:
        return None
    start, end, axis = (int(v.reshape(-1)[0]) for v in values[:3])
    if start < 0 or end != start + 1:
        return None
    return axis, start


def _squeezed_axes(squeeze: OnnxNode, graph: GraphView) -> list[int] | None:
    if "axes" in squeeze.attrs:
        return list(squeeze.attrs["axes"])
    axes = graph.initializer(squeeze.inputs[1]) if len(squeeze.inputs) > 1 else None
    return None if axes is None else [int(a) for a in axes.reshape(-1)]


def match_select(squeeze: OnnxNode, graph: GraphView) -> tuple[OnnxNode, ...] | None:
    """A unit Slice read only by this Squeeze, which removes exactly the sliced axis."""
    part = graph.producer(squeeze.inputs[0])
    found = unit_slice(part, graph) if part is not None else None
    if found is None or _squeezed_axes(squeeze, graph) != [found[0]]:
        return None
    users = graph.consumers(part.outputs[0])
    if len(users) != 1 or graph.is_output(part.outputs[0]):
        return None
    return (part, squeeze)


def _covers_axis(emit: Emitter, source: str, axis: int) -> bool:
    shape = emit.shape(source)
    if shape is None or shape[axis] is None or axis < 0:
        return False
    seen = set()
    for user in emit.graph.consumers(source):
        found = unit_slice(user, emit.graph)
        readers = emit.graph.consumers(user.outputs[0])
        if found is None or found[0] != axis or len(readers) != 1:
            return False
        if match_select(readers[0], emit.graph) is None:
            return False
        seen.add(found[1])
    return seen == set(range(shape[axis]))


@pattern_converter("select", root="Squeeze", match=match_select, priority=5)
def convert_select(nodes: tuple[OnnxNode, ...], emit: Emitter):
    part, _ = nodes
    axis, index = unit_slice(part, emit.graph)
    source = part.inputs[0]
    if _covers_axis(emit, source, axis):
        parts = emit.memo(("unbind", source, axis), lambda: _unbind(emit, source, axis))
        return emit.getitem(parts, index)
    return emit.method("select", emit.value(source), axis, index)


def _unbind(emit: Emitter, source: str, axis: int):
    return emit.call(torch.unbind, emit.value(source), axis)
