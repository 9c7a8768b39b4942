"""Graph-level parts of a diff: model headers, op-count table, graph IO and initializers."""

from __future__ import annotations

from collections import Counter

import onnx

from qdqforge.graph.diff.compare import TensorComparer
from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.model import InitializerDiff, IoChange, ModelSummary


def model_summary(index: DiffIndex, name: str) -> ModelSummary:
    """Header facts: name, opset, IR version, node and initializer counts, serialized size."""
    model = index.model
    opsets = {o.domain: o.version for o in model.opset_import}
    return ModelSummary(
        name=name,
        graph_name=model.graph.name,
        opset=opsets.get("", opsets.get("ai.onnx", 0)),
        ir_version=model.ir_version,
        nodes=len(index.nodes),
        initializers=len(index.initializers),
        size_bytes=_size(model),
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
    )


def _size(model: onnx.ModelProto) -> int:
    try:
        return model.ByteSize()
    except Exception:  # protobuf refuses to size models over 2 GB
        return -1


def op_counts(a: DiffIndex, b: DiffIndex) -> dict[str, tuple[int, int]]:
    """op -> (count in A, count in B), ops outside the default domain as ``domain::op``."""
    count_a, count_b = _ops(a), _ops(b)
    return {op: (count_a[op], count_b[op]) for op in sorted(count_a.keys() | count_b.keys())}


def _ops(g: DiffIndex) -> Counter:
    return Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in g.nodes)


def io_changes(a: DiffIndex, b: DiffIndex) -> tuple[IoChange, ...]:
    """Graph inputs (initializers excluded) and outputs added, removed or retyped."""
    changes = []
    for kind, a_vis, b_vis in (
        ("input", _graph_inputs(a), _graph_inputs(b)),
        ("output", _value_types(a.model.graph.output), _value_types(b.model.graph.output)),
    ):
        for name in [*a_vis, *(n for n in b_vis if n not in a_vis)]:
            x, y = a_vis.get(name), b_vis.get(name)
            if x != y:
                change = "added" if x is None else "removed" if y is None else "changed"
                changes.append(IoChange(kind, change, name, x, y))
    return tuple(changes)


def _graph_inputs(g: DiffIndex) -> dict[str, str]:
    inputs = [vi for vi in g.model.graph.input if vi.name not in g.initializers]
    return _value_types(inputs)


def _value_types(values) -> dict[str, str]:
    return {vi.name: onnx.helper.printable_type(vi.type) for vi in values}


def initializer_diff(tensors: TensorComparer) -> InitializerDiff:
    """Initializers only in B (added), only in A (removed), or in both with other contents."""
    a, b = tensors.a, tensors.b
    added = tuple(b.tensor_info(n) for n in b.initializers if n not in a.initializers)
    removed = tuple(a.tensor_info(n) for n in a.initializers if n not in b.initializers)
    common = [n for n in b.initializers if n in a.initializers]
    changed = tuple(c for c in (tensors.compare(n, n) for n in common) if c is not None)
    return InitializerDiff(added, removed, changed, len(common) - len(changed))
