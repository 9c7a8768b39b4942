"""graph/graph_index.py and graph/toposort.py: one index and one Kahn sort for the IR, the diff
and the runtime's plan (runtime/plan.py), giving the same order and the same errors."""

from __future__ import annotations

import pytest
from onnx import helper

from qdqforge.errors import GraphError
from qdqforge.graph import io
from qdqforge.graph.diff.index import DiffIndex
from qdqforge.graph.graph_index import GraphIndex
from qdqforge.graph.toposort import toposort
from qdqforge.runtime import plan
from tests.helpers import onnx_graphs as g

# file order: y = Add(m, u); m = Mul(x, x); u = Relu(x); z = Neg(m)  ->  Kahn, first in first
# out: mul, relu (no producers), then neg (ready after mul), then add (after relu)
NODES = [
    ("add", "Add", ["m", "u"], ["y"]),
    ("mul", "Mul", ["x", "x"], ["m"]),
    ("relu", "Relu", ["x"], ["u"]),
    ("neg", "Neg", ["m"], ["z"]),
]


def _model(nodes=NODES):
    protos = [helper.make_node(op, ins, outs, name=name) for name, op, ins, outs in nodes]
    outputs = [g.tensor_info("y", [3]), g.tensor_info("z", [3])]
    return g.make_model(protos, [g.tensor_info("x", [3])], outputs)


def test_index_counts_every_input_slot_and_skips_empty_names():
    index = GraphIndex([["x", "x"], ["", "a"]], [["a"], ["b", ""]])
    assert index.producer == {"a": 0, "b": 1}
    assert dict(index.consumers) == {"x": [0, 0], "a": [1]}


def test_ir_runtime_and_diff_read_the_same_graph_alike():
    model = _model()
    graph = io.from_proto(model)
    toposort(graph)
    ir_order = [n.name for n in graph.gs.nodes]
    runtime_order = [n.name for n in plan.toposort(model)]
    assert ir_order == runtime_order == ["mul", "relu", "neg", "add"]
    diff = DiffIndex(model)
    assert diff.consumers["m"] == [0, 3] and diff.consumers["x"] == [1, 1, 2]
    view = plan.PlanView(model, plan.toposort(model), roles={})
    assert [n.name for n in view.consumers("x")] == ["mul", "relu"]  # Mul(x, x) once
    assert [n.name for n in view.consumers("m")] == ["neg", "add"]  # plan order
    assert view.producer("m").name == "mul" and view.producer("x") is None


CYCLE = [("a", "Relu", ["t2"], ["t1"]), ("b", "Neg", ["t1"], ["t2"]), ("c", "Abs", ["t2"], ["y"])]
SELF = [("a", "Relu", ["x"], ["t1"]), ("loop", "Add", ["t1", "s"], ["s"])]


@pytest.mark.parametrize(
    "nodes, message",
    [
        (CYCLE, "cycle through 4 nodes: a, b, c, out"),
        (SELF, "'loop' .Add. consumes its own output"),
    ],
    ids=["cycle", "self_loop"],
)
def test_ir_and_runtime_raise_the_same_graph_error(nodes, message):
    model = _model([*nodes, ("out", "Identity", ["t1"], ["z"])])
    with pytest.raises(GraphError, match=message):
        toposort(io.from_proto(model))
    with pytest.raises(GraphError, match=message):
        plan.toposort(model)
