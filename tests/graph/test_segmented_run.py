"""A fed model run in segments (``graph.segmented_run``): the values of the one-session run bit for
bit, each segment's mapped weights handed back before the next runs, one session where a value
crossing segments is not a tensor or an output is not computed."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from qdqforge.graph import mapped, numerics, segmented_run
from qdqforge.graph.detached import weights_as_inputs
from qdqforge.graph.held_arrays import held_model
from qdqforge.graph.segment_plan import plan_segments
from qdqforge.graph.segmented_run import SegmentedSession
from tests.helpers.resident import mapped_resident_bytes

FLOAT = onnx.TensorProto.FLOAT
WIDTH = 64


def _chain_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """x -> MatMul w0 -> Relu -> MatMul w1 -> Add(skip from the first MatMul) -> If(reads w3
    in both branches) -> MatMul w2 -> y; a small bias initializer; every tensor exposed."""
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["r0"]),
        helper.make_node("MatMul", ["r0", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "h0"], ["s1"]),
        helper.make_node("Add", ["s1", "bias"], ["b1"]),
        helper.make_node("ReduceSum", ["b1"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node(
            "If",
            ["positive"],
            ["branch"],
            then_branch=_branch("then", "Add"),
            else_branch=_branch("else", "Sub"),
        ),
        helper.make_node("MatMul", ["branch", "w2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in weights.items()]
    inits += [
        numpy_helper.from_array(np.linspace(-1, 1, WIDTH).astype(np.float32), "bias"),
        numpy_helper.from_array(np.float32(0.0), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info(n, FLOAT, None) for n in ("y", "h0", "s1", "branch")],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _branch(name: str, op: str) -> onnx.GraphProto:
    """``b1 (op) (b1 @ w3)``: a subgraph reading two outer names."""
    return helper.make_graph(
        [
            helper.make_node("MatMul", ["b1", "w3"], [f"{name}_m"]),
            helper.make_node(op, ["b1", f"{name}_m"], [f"{name}_out"]),
        ],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", FLOAT, None)],
    )


def _mapped_weights(tmp_path, count: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    with mapped.SpillFile(tmp_path) as spill:
        arrays = {
            f"w{i}": spill.put(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) / 8)
            for i in range(count)
        }
    assert all(mapped.is_mapped(a) for a in arrays.values())
    return arrays


def _fed(model: onnx.ModelProto, weights) -> onnx.ModelProto:
    return weights_as_inputs(model, set(weights))


def _options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def _whole(skeleton, weights, x) -> list[np.ndarray]:
    session = ort.InferenceSession(skeleton.SerializeToString(), _options())
    return session.run(None, {"x": x, **weights})


@pytest.mark.parametrize("sign", [1.0, -1.0])  # each branch of the If
def test_segments_compute_what_one_session_computes_bit_for_bit(tmp_path, sign):
    weights = _mapped_weights(tmp_path)
    skeleton = _fed(_chain_model(weights), weights)
    budget = weights["w0"].nbytes  # one mapped weight a segment
    session = SegmentedSession(skeleton, weights, _options, budget)
    assert len(session.segments) == 4
    x = sign * np.abs(np.random.default_rng(0).standard_normal((3, WIDTH))).astype(np.float32)
    for _ in range(2):  # the second run reuses the sessions
        got = session.run(None, {"x": x})
        for a, b in zip(got, _whole(skeleton, weights, x), strict=True):
            np.testing.assert_array_equal(a, b)
    picked = session.run(["s1", "h0"], {"x": x})
    np.testing.assert_array_equal(picked[0], _whole(skeleton, weights, x)[2])
    np.testing.assert_array_equal(picked[1], _whole(skeleton, weights, x)[1])


def test_the_plan_counts_a_subgraphs_outer_weights_and_puts_a_large_weight_alone(tmp_path):
    weights = _mapped_weights(tmp_path)
    graph = _fed(_chain_model(weights), weights).graph
    plan = plan_segments(graph, weights, weights["w0"].nbytes)
    ops = [[graph.node[i].op_type for i in s.nodes] for s in plan]
    assert ops == [
        ["MatMul", "Relu"],
        ["MatMul", "Add", "Add", "ReduceSum", "Greater"],
        ["If"],  # reads w3 inside its branches
        ["MatMul"],
    ]
    assert "w3" in plan[2].inputs and "b1" in plan[2].inputs
    assert set(plan[1].outputs) == {"b1", "positive", "s1"}  # the If reads b1, positive
    assert "h0" in plan[0].outputs  # read by the skip Add and returned
    whole = plan_segments(graph, weights, 4 * weights["w0"].nbytes)
    assert len(whole) == 1 and whole[0].outputs == ("branch", "h0", "s1", "y")


def test_each_segments_weights_are_released_before_the_next_segment_runs(tmp_path, monkeypatch):
    weights = _mapped_weights(tmp_path)
    skeleton = _fed(_chain_model(weights), weights)
    session = SegmentedSession(skeleton, weights, _options, weights["w0"].nbytes)
    names = {id(a): n for n, a in weights.items()}
    events = []
    monkeypatch.setattr(segmented_run, "release", lambda a: events.append(names[id(a)]))
    real_run = ort.InferenceSession.run

    def run(self, outputs, feeds, options=None):
        events.append("run:" + ",".join(sorted(n for n in feeds if n in weights)))
        return real_run(self, outputs, feeds, options)

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    session.run(None, {"x": np.ones((2, WIDTH), np.float32)})
    assert events == ["run:w0", "w0", "run:w1", "w1", "run:w3", "w3", "run:w2", "w2"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_over_mapped_weights_holds_one_segments_pages(tmp_path):
    rng = np.random.default_rng(1)
    size = 2048
    with mapped.SpillFile(tmp_path) as spill:
        weights = {
            f"w{i}": spill.put(rng.standard_normal((size, size)).astype(np.float32) / 64)
            for i in range(4)
        }  # 16 MiB each
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i - 1}", f"w{i}"], [f"h{i}"]) for i in (1, 2, 3)]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", FLOAT, [1, size])],
        [helper.make_tensor_value_info("h3", FLOAT, None)],
        [numpy_helper.from_array(np.zeros((size, size), np.float32), n) for n in weights],
    )
    skeleton = _fed(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), weights)
    session = SegmentedSession(skeleton, weights, _options, weights["w0"].nbytes)
    real_run, peaks = ort.InferenceSession.run, []

    def run(self, outputs, feeds, options=None):
        result = real_run(self, outputs, feeds, options)
        peaks.append(mapped_resident_bytes(weights.values()))
        return result

    x = rng.standard_normal((1, size)).astype(np.float32)
    ort.InferenceSession.run = run
    try:
        got = session.run(None, {"x": x})[0]
    finally:
        ort.InferenceSession.run = real_run
    one = weights["w0"].nbytes
    assert len(peaks) == 4 and max(peaks) <= one + 2 * mmap.PAGESIZE, peaks
    np.testing.assert_array_equal(got, _whole(skeleton, weights, x)[0])


def test_a_sequence_crossing_segments_runs_the_graph_in_one_session(tmp_path):
    weights = _mapped_weights(tmp_path, 2)
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h0"]),
        helper.make_node("SequenceConstruct", ["h0", "x"], ["seq"]),
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),  # a new segment: seq crosses
        helper.make_node("ConcatFromSequence", ["seq"], ["cat"], axis=0),
        helper.make_node("MatMul", ["cat", "w1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "seq",
        [helper.make_tensor_value_info("x", FLOAT, [2, WIDTH])],
        [helper.make_tensor_value_info("y", FLOAT, None)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    skeleton = _fed(model, weights)
    session = SegmentedSession(skeleton, weights, _options, 1)  # a segment a node
    assert any("seq" in s.outputs for s in session.segments)
    x = np.ones((2, WIDTH), np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], _whole(skeleton, weights, x)[0])


def test_numerics_session_segments_only_over_the_mapped_budget(tmp_path, monkeypatch):
    weights = _mapped_weights(tmp_path)
    held = held_model(_chain_model(weights), weights)
    x = np.ones((2, WIDTH), np.float32)
    assert isinstance(numerics.session(held.model, fed=True), numerics.FedSession)
    monkeypatch.setattr(numerics, "SEGMENT_BYTES", weights["w0"].nbytes)
    built = numerics.session(held.model, fed=True)
    assert isinstance(built, SegmentedSession) and len(built.segments) == 4
    expected = numerics.session(held.model).run(None, {"x": x})
    for a, b in zip(built.run(None, {"x": x}), expected, strict=True):
        np.testing.assert_array_equal(a, b)
    copies = {n: np.array(a) for n, a in weights.items()}  # in memory: never segmented
    in_memory = held_model(_chain_model(copies), copies)
    assert isinstance(numerics.session(in_memory.model, fed=True), numerics.FedSession)


def test_an_unknown_output_name_is_refused(tmp_path):
    weights = _mapped_weights(tmp_path)
    session = SegmentedSession(_fed(_chain_model(weights), weights), weights, _options, 1)
    with pytest.raises(ValueError, match="r0"):
        session.run(["r0"], {"x": np.ones((2, WIDTH), np.float32)})


def test_a_weights_dequantize_runs_in_its_readers_segment_not_before_the_first_layer(tmp_path):
    rng = np.random.default_rng(2)
    with mapped.SpillFile(tmp_path) as spill:
        weights = {
            f"w{i}": spill.put(rng.integers(-127, 128, (WIDTH, WIDTH), np.int8)) for i in range(3)
        }
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in weights.items()]
    inits.append(numpy_helper.from_array(np.float32(0.01), "scale"))
    nodes = [helper.make_node("DequantizeLinear", [f"w{i}", "scale"], [f"f{i}"]) for i in range(3)]
    nodes.append(helper.make_node("Transpose", ["f2"], ["f2t"]))  # a chain of weight-only nodes
    nodes += [
        helper.make_node("MatMul", ["x", "f0"], ["h0"]),
        helper.make_node("MatMul", ["h0", "f1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "f2t"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", FLOAT, [2, WIDTH])],
        [helper.make_tensor_value_info("y", FLOAT, None)],
        inits,
    )
    skeleton = _fed(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), weights)
    plan = plan_segments(skeleton.graph, weights, weights["w0"].nbytes)
    ops = [[skeleton.graph.node[i].op_type for i in s.nodes] for s in plan]
    assert ops == [
        ["DequantizeLinear", "MatMul"],
        ["DequantizeLinear", "MatMul"],
        ["DequantizeLinear", "Transpose", "MatMul"],
    ]
    # a dequantized int8 weight costs its bytes and its float32 copy: 5x, so two of them do
    # not fit twice their bytes (a session may dequantize all of a segment's weights first)
    assert len(plan_segments(skeleton.graph, weights, 2 * weights["w0"].nbytes)) == 3
    assert len(plan_segments(skeleton.graph, weights, 10 * weights["w0"].nbytes)) == 2
    session = SegmentedSession(skeleton, weights, _options, weights["w0"].nbytes)
    x = rng.standard_normal((2, WIDTH)).astype(np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], _whole(skeleton, weights, x)[0])


@pytest.mark.parametrize("prepack", [True, False])
def test_a_default_kernel_session_over_mapped_weights_runs_in_segments_with_its_own_values(
    tmp_path, monkeypatch, prepack
):
    weights = _mapped_weights(tmp_path)
    held = held_model(_chain_model(weights), weights)
    x = np.abs(np.random.default_rng(9).standard_normal((3, WIDTH))).astype(np.float32)
    copies = {n: np.array(a) for n, a in weights.items()}
    expected = numerics.session(_chain_model(copies), prepack=prepack).run(None, {"x": x})
    monkeypatch.setattr(numerics, "SEGMENT_BYTES", weights["w0"].nbytes)
    built = numerics.session(held.model, prepack=prepack)  # weights copied per segment
    assert isinstance(built, SegmentedSession) and len(built.segments) == 4
    made = []
    real = ort.InferenceSession.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "__init__", counting)
    for _ in range(2):  # each run makes each segment's session again: none is kept
        for a, b in zip(built.run(None, {"x": x}), expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(made) == 8
    if sys.platform.startswith("linux"):
        assert mapped_resident_bytes(weights.values()) == 0
