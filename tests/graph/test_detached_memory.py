"""graph/detached.py's memory hand-offs: a materialized graph keeps nothing of its proto, a dropped
graph (a reference cycle) is freed by ``reap_dropped`` before a large stage, and a recipe run on
a Graph keeps the exporter's producer fields through ``keep_producer``."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from onnx import helper

from qdqforge.graph import io
from qdqforge.graph.detached import (
    REAP_BYTES,
    constant_bytes,
    graph_with_arrays,
    keep_producer,
    reap_dropped,
)
from tests.helpers.onnx_graphs import init, make_model, tensor_info

WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4)


def linear():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = make_model(
        nodes, [tensor_info("x", [2, 3])], [tensor_info("y", [2, 4])], [init("w", WEIGHT)]
    )
    model.producer_name, model.producer_version = "pytorch", "2.13.0+cpu"
    return model


def test_materialized_graph_holds_no_container_of_its_proto():
    """gs's import_domains was the proto's own opset_import (a sub-message keeps its whole
    root, every weight, alive); the graph gets copies."""
    proto = linear()
    graph = graph_with_arrays(proto)
    proto.opset_import[0].version = 99
    assert [o.version for o in graph.gs.import_domains] != [99]
    assert type(graph.gs.import_domains) is list
    np.testing.assert_array_equal(graph.gs.tensors()["w"].values, WEIGHT)
    assert constant_bytes(graph) == WEIGHT.nbytes


@pytest.fixture
def collector_off():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def _dropped_graph_array() -> weakref.ref:
    graph = io.from_proto(linear())
    array = np.array(graph.gs.tensors()["w"].values)
    graph.gs.tensors()["w"].values = array
    return weakref.ref(array)  # the graph (nodes <-> tensors: a cycle) is dropped on return


def test_dropped_graph_is_freed_before_a_large_stage_only(collector_off):
    array = _dropped_graph_array()
    reap_dropped(REAP_BYTES - 1)  # a small stage: left to the collector's own pace
    assert array() is not None  # the cycle still holds it
    reap_dropped(REAP_BYTES)
    assert array() is None


def test_keep_producer_puts_back_what_a_graph_copy_drops():
    source = graph_with_arrays(linear())
    copied = source.copy()
    assert copied.gs.producer_name == ""  # onnx-graphsurgeon's Graph.copy drops it
    keep_producer(source, copied)
    proto = io.to_proto(copied)
    assert (proto.producer_name, proto.producer_version) == ("pytorch", "2.13.0+cpu")
