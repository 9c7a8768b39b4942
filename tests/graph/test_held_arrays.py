"""Large initializers held once as arrays while data-less copies of the model run.

A held model's copies (exposed outputs, forced inputs, onnxruntime's optimized graph) carry
placeholders only; every session of one of them reads the same arrays, and computes what the
whole model computes. A copy run after its arrays were let go fails with a GraphError naming
the initializer, never silently.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import onnx
import pytest

from qdqforge.errors import GraphError
from qdqforge.graph import external, mapped, numerics
from qdqforge.graph.exposed_run import expose
from qdqforge.graph.external import same_bits
from qdqforge.graph.forced_run import forced_run
from qdqforge.graph.held_arrays import array_of, hold, hold_file
from tests.helpers.onnx_graphs import float_conv_model, identity_model
from tests.helpers.qdq_cases import qdq_conv
from tests.helpers.resident import mapped_resident_bytes


def test_copies_of_a_held_model_compute_what_the_model_does():
    model, feeds = float_conv_model()
    held = hold(model)
    assert list(held.arrays) == ["w"] and held.model.ByteSize() < 2000
    want = numerics.run(model, feeds)
    exposed = expose(held.model, ["c"])
    got = numerics.session(exposed).run(None, feeds)
    np.testing.assert_array_equal(got[0], want[0])
    forced_c = np.zeros((2, 64, 8, 8), np.float32)
    out, _ = forced_run(held.model, feeds, {"c": forced_c}, {"c": np.dtype(np.float32)})
    np.testing.assert_array_equal(out[0], np.zeros_like(out[0]))  # Relu(0)
    assert np.shares_memory(array_of(held.model.graph.initializer[0]), held.arrays["w"])


def test_the_optimized_graph_of_a_held_qdq_model_keeps_its_integer_kernel():
    model, feeds = qdq_conv(127, channels=2048)
    held = hold(model)
    optimized = numerics.held_optimized_graph(held.model)
    assert "QLinearConv" in {n.op_type for n in optimized.model.graph.node}
    got = numerics.session(optimized.model).run(None, feeds)
    np.testing.assert_array_equal(got[0], numerics.default_session(model).run(None, feeds)[0])


def test_a_copy_run_after_its_arrays_were_released_names_the_initializer():
    model, _ = float_conv_model()
    copy = expose(hold(model).model, ["c"])  # the Held object is dropped here
    gc.collect()
    with pytest.raises(GraphError, match="'w'"):
        numerics.session(copy)
    with pytest.raises(GraphError, match="'w'"):
        array_of(copy.graph.initializer[0])


def test_a_saved_tensor_equal_to_a_known_array_is_held_as_that_array(tmp_path):
    rng = np.random.default_rng(3)
    w = {n: rng.standard_normal((128, 256)).astype(np.float32) for n in "abcd"}
    w["c"][5, 7] = 0.0
    path = tmp_path / "m.onnx"
    onnx.save(identity_model(w), path)
    negative_zero = w["c"].copy()
    negative_zero[5, 7] = -0.0  # equal as floats, not as bits
    known = {
        "a": w["a"].copy(),  # same bits: held as it
        "b": _last_bit_flipped(w["b"], 9),
        "c": negative_zero,
        "d": w["d"].astype(np.float64),  # another dtype
        "e": w["a"].copy(),  # no such initializer
    }
    held = hold_file(path, known=known)
    assert held.arrays["a"] is known["a"]
    for name in "bcd":
        assert held.arrays[name] is not known[name]
        np.testing.assert_array_equal(held.arrays[name], w[name])
        assert held.arrays[name].tobytes() == w[name].tobytes()
    got = numerics.session(held.model).run(None, {})
    for name, out in zip("abcd", got, strict=True):
        assert out.tobytes() == w[name].tobytes()


def _last_bit_flipped(array: np.ndarray, index: int) -> np.ndarray:
    bits = array.copy().reshape(-1).view(np.uint32)
    bits[index] ^= 1
    return bits.view(np.float32).reshape(array.shape)


def test_same_bits_reads_bytes_not_values():
    x = np.array([1.0, np.nan, 0.0], np.float32)
    assert same_bits(x, x.copy())
    assert not same_bits(x, np.array([1.0, np.nan, -0.0], np.float32))
    quiet = x.view(np.uint32).copy()
    quiet[1] += 1  # another NaN payload
    assert not same_bits(x, quiet.view(np.float32))
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert same_bits(np.ascontiguousarray(strided[:, ::2]), strided[:, ::2])
    assert not same_bits(strided, strided.T.copy().T.reshape(4, 3))
    assert not same_bits(None, x)


@pytest.mark.parametrize("flipped", [None, 0, 4095, 4096, 10_000])  # each block, either edge
def test_same_bits_compares_block_by_block_and_hands_mapped_pages_back(
    tmp_path, monkeypatch, flipped
):
    monkeypatch.setattr(external, "COMPARE_BYTES", 4096 * 4)  # 4096 float32 a block
    x = np.random.default_rng(1).standard_normal(10_001).astype(np.float32)
    with mapped.SpillFile(tmp_path) as spill:
        view = spill.put(x)
    other = x if flipped is None else _last_bit_flipped(x, flipped)
    assert same_bits(view, other) == (flipped is None)
    assert same_bits(other, view) == (flipped is None)
    if sys.platform.startswith("linux"):
        assert mapped_resident_bytes([view]) == 0


def test_the_optimized_graph_holds_an_unchanged_weight_as_the_model_s_own_array():
    model, feeds = qdq_conv(127, channels=2048)
    held = hold(model)
    optimized = numerics.held_optimized_graph(held.model)
    shared = [n for n, a in optimized.arrays.items() if any(a is b for b in held.arrays.values())]
    assert shared, (list(optimized.arrays), list(held.arrays))
    got = numerics.session(optimized.model).run(None, feeds)
    np.testing.assert_array_equal(got[0], numerics.default_session(model).run(None, feeds)[0])
