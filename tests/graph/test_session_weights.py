"""``numerics.session`` hands large initializers to onnxruntime as arrays: same session.

The session is built from the model without those tensors' data, which onnxruntime takes from
arrays (``add_external_initializers``). What it computes must not change: bit for bit against a
session of the whole serialized model, with optimizations off and at onnxruntime's default
level (where QDQ groups fuse into integer kernels, which need their weights as constants), and
the graph onnxruntime writes out must be the same graph.
"""

from __future__ import annotations

import gc

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qdqforge.graph import detached, numerics
from qdqforge.graph.held_arrays import array_of
from tests.helpers.onnx_graphs import float_conv_model
from tests.helpers.qdq_cases import qdq_conv

CASES = {"float_conv": float_conv_model, "qdq_conv": lambda: qdq_conv(127, channels=2048)}


def _whole_session(model: onnx.ModelProto, optimize: bool) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("in_memory_bytes", [numerics.IN_MEMORY_BYTES, 1])
@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_results_are_bit_identical_to_a_session_of_the_whole_model(
    monkeypatch, case, optimize, in_memory_bytes
):
    monkeypatch.setattr(numerics, "IN_MEMORY_BYTES", in_memory_bytes)
    model, feeds = CASES[case]()
    skeleton, arrays = detached.in_memory_initializers(model, in_memory_bytes)
    assert arrays and skeleton.ByteSize() < model.ByteSize() / 2  # the weights did move
    got = numerics.session(model, optimize=optimize).run(None, feeds)
    want = _whole_session(model, optimize).run(None, feeds)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_writes_the_same_optimized_graph(monkeypatch, tmp_path, case):
    monkeypatch.setattr(numerics, "IN_MEMORY_BYTES", 1)
    model, _ = CASES[case]()
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "whole.onnx")
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    whole = onnx.load(tmp_path / "whole.onnx")
    ours = numerics.optimized_graph(model)
    assert [(n.op_type, list(n.input)) for n in ours.graph.node] == [
        (n.op_type, list(n.input)) for n in whole.graph.node
    ]
    want = {t.name: numpy_helper.to_array(t) for t in whole.graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in ours.graph.initializer}
    assert got.keys() == want.keys()  # the data written out, too (through its data file)
    assert all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    held = numerics.held_optimized_graph(model)  # the large ones read into held arrays
    assert held.arrays and held.model.ByteSize() < whole.ByteSize() / 2
    for tensor in held.model.graph.initializer:
        np.testing.assert_array_equal(array_of(tensor), want[tensor.name], strict=True)
    if case == "qdq_conv":
        assert "QLinearConv" in {n.op_type for n in ours.graph.node}


def test_the_session_keeps_its_arrays_after_the_model_is_gone():
    model, feeds = float_conv_model()
    want = _whole_session(model, False).run(None, feeds)
    session = numerics.session(model)
    del model
    gc.collect()
    np.zeros(10**6, np.float32)  # reuse freed memory, if any was freed
    assert np.array_equal(session.run(None, feeds)[0], want[0])


def test_the_model_is_not_modified():
    model, _ = float_conv_model()
    before = model.SerializeToString()
    numerics.session(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("optimize", [False, True])
def test_unread_large_initializers_do_not_stop_the_session(optimize):
    """An initializer no node reads (an exported model's unused weight, e.g. BERT's pooler) is
    dropped by onnxruntime before it takes the external ones, which then failed ("Failed to
    find existing initializer"); one read only inside an If branch is kept."""
    rng = np.random.default_rng(0)
    w_then, w_else = (rng.standard_normal((3, 8000)).astype(np.float32) for _ in range(2))
    unread = rng.standard_normal((200, 200)).astype(np.float32)  # 160 KB > IN_MEMORY_BYTES

    def branch(name: str, weight: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", weight], [f"{name}_y"])], name, [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2, 8000])],
        )  # fmt: skip

    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", "w_then"),
                            else_branch=branch("else", "w_else"))  # fmt: skip
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8000])],
        [numpy_helper.from_array(a, n) for a, n in
         ((w_then, "w_then"), (w_else, "w_else"), (unread, "pooler"))],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    built = numerics.session(model, optimize=optimize)
    for cond, weight in ((True, w_then), (False, w_else)):
        (y,) = built.run(None, {"x": x, "cond": np.array(cond)})
        np.testing.assert_allclose(y, x @ weight, rtol=1e-5, atol=1e-5)
    assert [t.name for t in model.graph.initializer] == ["w_then", "w_else", "pooler"]  # as given


def _dense_model() -> tuple[onnx.ModelProto, dict]:
    """Gemm then MatMul on weights of 300 KiB and 150 KiB (handed over as arrays)."""
    rng = np.random.default_rng(4)
    w1, b1 = rng.standard_normal((256, 300), np.float32), rng.standard_normal(300, np.float32)
    w2 = rng.standard_normal((300, 128), np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
             helper.make_node("MatMul", ["h", "w2"], ["y"])]  # fmt: skip
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    graph = helper.make_graph(
        nodes,
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    feeds = {"x": rng.standard_normal((3, 256), np.float32)}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), feeds


@pytest.mark.parametrize("case", [*CASES, "dense"])
def test_fed_weights_compute_what_constant_ones_do(case):
    """Optimizations off and nothing prepacked (the reference stage's session), a weight fed as
    an input meets the same kernel as the constant: bit for bit. (A prepacked Gemm or MatMul,
    a default session's, may sum in another order: not compared.)"""
    model, feeds = _dense_model() if case == "dense" else CASES[case]()
    fed = numerics.session(model, prepack=False, fed=True)
    assert isinstance(fed, numerics.FedSession)
    assert len(fed.get_inputs()) > len(feeds)  # the weights are inputs
    got = fed.run(None, feeds)
    want = numerics.session(model, prepack=False).run(None, feeds)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_fed_weights_are_refused_to_an_optimized_session():
    model, _ = _dense_model()
    with pytest.raises(ValueError, match="fed weights"):
        numerics.session(model, optimize=True, fed=True)


def test_sessions_over_large_weights_run_without_the_arena(monkeypatch):
    model, feeds = _dense_model()
    assert numerics.session(model).get_session_options().enable_cpu_mem_arena
    monkeypatch.setattr(numerics, "ARENA_MAX_BYTES", 300 * 1024)  # the float32 size of w1 + w2
    for fed in (False, True):
        built = numerics.session(model, prepack=False, fed=fed)
        assert not built.get_session_options().enable_cpu_mem_arena
        built.run(None, feeds)
    assert numerics.session(model, arena=True).get_session_options().enable_cpu_mem_arena
