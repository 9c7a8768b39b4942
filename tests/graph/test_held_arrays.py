"""Large initializers held once as arrays while data-less copies of the model run.

A held model's copies (exposed outputs, forced inputs, onnxruntime's optimized graph) carry
placeholders only; every session of one of them reads the same arrays, and computes what the
whole model computes. A copy run after its arrays were let go fails with a GraphError naming
the initializer, never silently.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from qdqforge.errors import GraphError
from qdqforge.graph import numerics
from qdqforge.graph.exposed_run import expose
from qdqforge.graph.forced_run import forced_run
from qdqforge.graph.held_arrays import array_of, hold
from tests.helpers.onnx_graphs import float_conv_model
from tests.helpers.qdq_cases import qdq_conv


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
