"""Compare two matched nodes: op, attributes, inputs, outputs and the constants they read."""

from __future__ import annotations

from onnx import AttributeProto, NodeProto, numpy_helper

from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.diff.model import AttrChange, InputChange, NodeChange, TensorChange
from qdqforge.graph.diff.values import attr_key, attr_text, same_tensor, tensor_change


class TensorComparer:
    """Compares initializers of A and B, each (A name, B name) pair once."""

    def __init__(self, a: DiffIndex, b: DiffIndex) -> None:
        self.a, self.b = a, b
        self._seen: dict[tuple[str, str], TensorChange | None] = {}

    def compare(self, a_name: str, b_name: str) -> TensorChange | None:
        """Change from initializer ``a_name`` of A to ``b_name`` of B (None: same contents)."""
        key = (a_name, b_name)
        if key not in self._seen:
            self._seen[key] = self._compare(a_name, b_name)
        return self._seen[key]

    def _compare(self, a_name: str, b_name: str) -> TensorChange | None:
        same = same_tensor(self.a.initializers[a_name], self.b.initializers[b_name])
        if same:
            return None
        return tensor_change(a_name, self.a.array(a_name), b_name, self.b.array(b_name))


def compare_pair(ai: int, bi: int, how: str, tensors: TensorComparer) -> NodeChange | None:
    """The change between A node ``ai`` and B node ``bi``, or None when they are the same."""
    a, b = tensors.a, tensors.b
    na, nb = a.nodes[ai], b.nodes[bi]
    attrs = attr_changes(na, nb)
    inputs = input_changes(na, nb)
    constants = [*_input_constant_changes(na, nb, tensors), *_attr_tensor_changes(na, nb)]
    outputs_changed = list(na.output) != list(nb.output)
    kind_changed = (na.name, na.op_type, na.domain) != (nb.name, nb.op_type, nb.domain)
    if not (kind_changed or attrs or inputs or constants or outputs_changed):
        return None
    return NodeChange(a.info(ai), b.info(bi), how, attrs, inputs, outputs_changed, tuple(constants))


def attr_changes(na: NodeProto, nb: NodeProto) -> tuple[AttrChange, ...]:
    """Attributes added, removed or given another value (compared exactly)."""
    a_attrs = {x.name: x for x in na.attribute}
    b_attrs = {x.name: x for x in nb.attribute}
    changes = []
    for name in sorted(a_attrs.keys() | b_attrs.keys()):
        x, y = a_attrs.get(name), b_attrs.get(name)
        if x is None or y is None or attr_key(x) != attr_key(y):
            changes.append(AttrChange(name, _text(x), _text(y)))
    return tuple(changes)


def _text(attr: AttributeProto | None) -> str | None:
    return None if attr is None else attr_text(attr)


def input_changes(na: NodeProto, nb: NodeProto) -> tuple[InputChange, ...]:
    """Input slots that read another tensor (None on the side where the slot is missing)."""
    width = max(len(na.input), len(nb.input))
    a_in = [*na.input, *[None] * (width - len(na.input))]
    b_in = [*nb.input, *[None] * (width - len(nb.input))]
    return tuple(InputChange(i, x, y) for i, (x, y) in enumerate(zip(a_in, b_in)) if x != y)


def _input_constant_changes(na: NodeProto, nb: NodeProto, tensors: TensorComparer):
    for x, y in zip(na.input, nb.input):
        if x in tensors.a.initializers and y in tensors.b.initializers:
            change = tensors.compare(x, y)
            if change is not None:
                yield change


def _attr_tensor_changes(na: NodeProto, nb: NodeProto):
    """Tensor-valued attributes (Constant's ``value``) whose contents differ."""
    b_attrs = {x.name: x for x in nb.attribute if x.type == AttributeProto.TENSOR}
    for x in na.attribute:
        y = b_attrs.get(x.name)
        if x.type != AttributeProto.TENSOR or y is None or attr_key(x) == attr_key(y):
            continue
        a_arr, b_arr = numpy_helper.to_array(x.t), numpy_helper.to_array(y.t)
        change = tensor_change(f"{na.name}.{x.name}", a_arr, f"{nb.name}.{y.name}", b_arr)
        if change is not None:
            yield change
