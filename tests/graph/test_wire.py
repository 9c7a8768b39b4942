"""A saved model's inline weights found in its bytes (graph.wire) and held without a copy.

The skeleton :func:`split_weights` returns must be, field for field, the model ``onnx.load``
reads less the ``raw_data`` of the tensors it found, and each span must hold exactly those
bytes, for tensors of every layout the writers produce (several float32 tensors, so that some
start off a 4-byte boundary, int8, scalars, small tensors, ``float_data``, a repeated name, a
subgraph's initializer). ``hold_file`` then holds int8 and aligned tensors as views of the
mapped file, misaligned ones as aligned copies, and all equal to what onnx reads.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qdqforge.graph import held_arrays, mapped, wire
from qdqforge.graph.held_arrays import hold_file

MIN = 1024


def _model(tmp_path):
    """The model below with one more float32 tensor whose ``raw_data`` starts on a 4-byte
    boundary (its name, written before its data, is padded until it does)."""
    for pad in range(4):
        path, tensors = _built(tmp_path, "w" + "_" * pad)
        spans = wire.split_weights(path.read_bytes(), MIN)[1]
        if spans["w" + "_" * pad].offset % 4 == 0:
            return path, tensors
    raise AssertionError("no name aligned the tensor")


def _built(tmp_path, aligned_name: str):
    rng = np.random.default_rng(5)
    tensors = {
        "f0": rng.standard_normal((33, 17)).astype(np.float32),
        "i8": rng.integers(-128, 128, (3001,), dtype=np.int8),
        "f1": rng.standard_normal((40, 9)).astype(np.float32),
        "f2": rng.standard_normal((7, 61)).astype(np.float32),
        "d": rng.standard_normal((300,)).astype(np.float64),
        "small": np.arange(5, dtype=np.float32),
        "scalar": np.array(2.5, np.float32),
        aligned_name: rng.standard_normal((20, 20)).astype(np.float32),
    }
    inits = [numpy_helper.from_array(a, n) for n, a in tensors.items()]
    listed = helper.make_tensor("listed", TensorProto.FLOAT, [400], np.ones(400).tolist())
    twin_a = numpy_helper.from_array(np.zeros(600, np.float32), "twin")
    twin_b = numpy_helper.from_array(np.ones(600, np.float32), "twin")
    inner = numpy_helper.from_array(np.full(500, 3.0, np.float32), "inner_w")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner_w"], ["b_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("b_out", TensorProto.FLOAT, [500])],
        [inner],
    )
    names = [*tensors, "listed", "twin"]
    nodes = [helper.make_node("Identity", [n], [f"{n}_y"]) for n in names]
    nodes.append(helper.make_node("If", ["cond"], ["if_y"], then_branch=branch, else_branch=branch))
    outputs = [helper.make_tensor_value_info(f"{n}_y", 0, None) for n in names]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [*outputs, helper.make_tensor_value_info("if_y", TensorProto.FLOAT, [500])],
        [*inits, listed, twin_a, twin_b],
        doc_string="a graph",
    )
    model = helper.make_model(graph, doc_string="a model")
    helper.set_model_props(model, {"k": "v"})
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path, tensors


def test_the_skeleton_is_the_model_less_the_spanned_raw_data(tmp_path):
    path, tensors = _model(tmp_path)
    data = path.read_bytes()
    skeleton, spans = wire.split_weights(data, MIN)
    large = {n for n, a in tensors.items() if a.nbytes >= MIN}
    assert set(spans) == large == {"f0", "i8", "f1", "f2", "d", *tensors} - {"small", "scalar"}
    loaded = onnx.load(path)
    for tensor in loaded.graph.initializer:
        if tensor.name in spans:
            span = spans[tensor.name]
            assert data[span.offset : span.offset + span.length] == tensor.raw_data
            tensor.ClearField("raw_data")
    assert skeleton == loaded
    offsets = [spans[n].offset % 4 for n in ("f0", "f1", "f2")]
    assert any(offsets) and all(
        np.frombuffer(data, np.uint8).size > s.offset for s in spans.values()
    )


def test_bytes_that_are_no_model_raise_a_wire_error(tmp_path):
    path, _ = _model(tmp_path)
    data = path.read_bytes()
    with pytest.raises(wire.WireError):
        wire.split_weights(data[: len(data) // 2], MIN)  # a field runs past the end
    with pytest.raises(wire.WireError):
        wire.split_weights(b"\x0b\x00" + data, MIN)  # wire type 3 (a group)


def test_a_held_file_maps_what_it_can_and_equals_what_onnx_reads(tmp_path):
    path, tensors = _model(tmp_path)
    known = {"f1": tensors["f1"].copy()}
    held = hold_file(path, MIN, known=known)
    loaded = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    for name, array in held.arrays.items():
        assert array.tobytes() == loaded[name].tobytes(), name
        assert array.flags.aligned
    assert held.arrays["f1"] is known["f1"]
    assert mapped._mapping_of(held.arrays["i8"]) is not None  # int8: always a view
    spans = wire.split_weights(path.read_bytes(), MIN)[1]
    for name, span in spans.items():
        array = held.arrays[name]
        if name != "f1":  # aligned: a view of the map; misaligned: a copy
            aligned = span.offset % array.dtype.itemsize == 0
            assert (mapped._mapping_of(array) is not None) == aligned, name
    floats = [n for n in spans if tensors[n].dtype == np.float32]
    assert {spans[n].offset % 4 == 0 for n in floats} == {True, False}  # both kinds were held
    assert {t.name for t in held.model.graph.initializer} == set(loaded)  # placeholders


def test_a_file_that_cannot_be_mapped_or_walked_is_read_whole(tmp_path, monkeypatch):
    path, _ = _model(tmp_path)
    loaded = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    failures = [
        (held_arrays, "map_file", OSError("no mmap here")),
        (wire, "split_weights", wire.WireError("no walk")),
    ]
    for module, name, failure in failures:

        def fail(*_, failure=failure):
            raise failure

        with monkeypatch.context() as patch:
            patch.setattr(module, name, fail)
            held = hold_file(path, MIN)
        assert all(mapped._mapping_of(a) is None for a in held.arrays.values())
        for tensor, array in held.arrays.items():
            assert array.tobytes() == loaded[tensor].tobytes(), tensor
