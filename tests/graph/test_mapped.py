"""External data read through a read-only map (``graph.mapped``): the same values as a copied
read, pages handed back after use, and ``save_model`` writing the same files either way."""

from __future__ import annotations

import filecmp
import json
import mmap
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from qdqforge.graph import external, io, mapped, numerics
from qdqforge.graph.detached import materialize, placeholder
from qdqforge.graph.held_arrays import held_model
from qdqforge.passes.grids.weight_grid import off_grid_count
from qdqforge.runtime.builder import reimport
from tests.helpers.deploy_flow import seed_flow
from tests.helpers.fixed_malloc import fixed_malloc_env
from tests.helpers.onnx_graphs import identity_model
from tests.helpers.resident import mapped_resident_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * mmap.PAGESIZE


def _external_model(tmp_path, tensors: list[np.ndarray]):
    """A model whose initializers ``t0, t1, ...`` lie back to back in ``m.onnx.data`` (no
    alignment: an odd-sized int8 tensor shifts the next one off its item size)."""
    inits, offset = [], 0
    with open(tmp_path / "m.onnx.data", "wb") as data:
        for i, array in enumerate(tensors):
            tensor = numpy_helper.from_array(array, f"t{i}")
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", "m.onnx.data"), ("offset", offset),
                               ("length", array.nbytes)):  # fmt: skip
                tensor.external_data.add(key=key, value=str(value))
            data.write(array.tobytes())
            offset += array.nbytes
            inits.append(tensor)
    nodes = [helper.make_node("Identity", [f"t{i}"], [f"y{i}"]) for i in range(len(tensors))]
    outputs = [helper.make_tensor_value_info(f"y{i}", 1, None) for i in range(len(tensors))]
    graph = helper.make_graph(nodes, "g", [], outputs, inits)
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_mapped_arrays_equal_copied_ones_and_are_read_only(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((64, 48)).astype(np.float32),
              np.arange(-3, 4, dtype=np.int8),  # 7 bytes: what follows is misaligned
              rng.standard_normal((33, 5)).astype(np.float32),
              np.arange(12, dtype=np.int64).reshape(3, 4)]  # fmt: skip
    path = _external_model(tmp_path, arrays)
    proto = onnx.load(str(path), load_external_data=False)
    copied = external.external_arrays(proto, tmp_path)
    views = external.external_arrays(proto, tmp_path, mapped=True)
    for i, array in enumerate(arrays):
        np.testing.assert_array_equal(views[f"t{i}"], array)
        np.testing.assert_array_equal(copied[f"t{i}"], array)
        assert views[f"t{i}"].dtype == array.dtype and views[f"t{i}"].shape == array.shape
    assert mapped._mapping_of(views["t0"]) is not None
    assert mapped._mapping_of(views["t1"]) is not None  # int8: any offset is aligned
    assert mapped._mapping_of(views["t2"]) is None  # offset 12295: read into its own array
    assert mapped._mapping_of(copied["t0"]) is None
    with pytest.raises(ValueError, match="read-only"):
        views["t0"][0, 0] = 1.0


def test_mapped_graph_runs_like_the_copied_one(tmp_path):
    rng = np.random.default_rng(1)
    path = _external_model(tmp_path, [rng.standard_normal((40, 30)).astype(np.float32)] * 2)
    copied, views = io.load(path), io.load(path, mapped=True)
    materialize(copied)
    materialize(views)
    assert io.to_proto(views).SerializeToString() == io.to_proto(copied).SerializeToString()


@linux_only
def test_release_hands_the_pages_back_and_they_read_again(tmp_path):
    size = 48 * 2**20
    values = np.arange(size // 4, dtype=np.float32)
    path = _external_model(tmp_path, [values])
    proto = onnx.load(str(path), load_external_data=False)
    view = external.external_arrays(proto, tmp_path, mapped=True)["t0"]
    before = _rss()
    assert float(view.sum(dtype=np.float64)) == float(values.sum(dtype=np.float64))
    touched = _rss()
    assert touched - before > size * 0.9  # every page was read in
    mapped.release(view[: view.size // 2])
    half = _rss()
    assert touched - half > size * 0.45 and touched - half < size * 0.55
    mapped.release(view)
    assert _rss() - before < size * 0.05
    np.testing.assert_array_equal(view, values)  # faulted in again from the file


@linux_only
def test_release_leaves_other_arrays_alone(tmp_path):
    data = np.arange(2**22, dtype=np.float32)
    data.tofile(tmp_path / "raw.bin")
    users = np.memmap(tmp_path / "raw.bin", np.float32, "r")
    float(users.sum())
    before = _rss()
    for array in (users, data, data[::2], np.float32(1.0) * np.ones(3)):
        mapped.release(array)
    assert before - _rss() < 2**20  # the user's own map keeps its pages
    np.testing.assert_array_equal(users, data)


@linux_only
def test_grid_reader_releases_each_block(tmp_path):
    rng = np.random.default_rng(2)
    scale = np.full((4096,), 0.01, np.float32)
    weight = rng.integers(-127, 128, (4096, 4096)).astype(np.float32) * scale[:, None]
    path = _external_model(tmp_path, [weight])
    proto = onnx.load(str(path), load_external_data=False)
    view = external.external_arrays(proto, tmp_path, mapped=True)["t0"]
    before = _rss()
    record = type("Rec", (), {"dst_type": None})()
    assert off_grid_count(view, scale, 0, record, "layer") == 0
    assert _rss() - before < weight.nbytes * 0.25  # 64 MiB read, one 16 MiB block held
    np.testing.assert_array_equal(view, weight)


def test_save_model_writes_the_same_files_from_mapped_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "EXTERNAL_THRESHOLD", 4096)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 16, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 6 * 6, 64),
    ).eval()
    batches = [(torch.randn(4, 3, 10, 10),) for _ in range(2)]
    runs, maps = {}, []
    map_file, load_graph = external.map_file, external.load_graph
    monkeypatch.setattr(external, "map_file", lambda path: maps.append(path) or map_file(path))
    for how in ("mapped", "copied"):
        if how == "copied":
            monkeypatch.setattr(external, "load_graph", lambda p, mapped: load_graph(p))
        folder = tmp_path / how
        folder.mkdir()
        torch.manual_seed(0)
        runs[how] = seed_flow(folder, model, batches)
    modified = [path for path in maps if path.name == "m.onnx.data"]
    assert modified == [tmp_path / "mapped" / "m.onnx.data"]  # the save read the weights so
    for kind in ("fake_quant", "deploy", "qdq"):
        mine, theirs = getattr(runs["mapped"], kind), getattr(runs["copied"], kind)
        assert mine.with_name(mine.name + ".data").stat().st_size > 16 * 6 * 6 * 64
        assert filecmp.cmp(f"{mine}.data", f"{theirs}.data", shallow=False), kind


def test_spilled_arrays_read_back_equal_and_read_only_leaving_no_file(tmp_path):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((300, 7)).astype(np.float32),
              np.arange(-2, 3, dtype=np.int8),  # 5 bytes: the next one starts on a new map
              np.zeros((0, 3), np.float32),
              rng.standard_normal((2, 3, 4))[:, ::2]]  # float64, not contiguous  # fmt: skip
    with mapped.SpillFile(tmp_path) as spill:
        assert list(tmp_path.iterdir()) == []  # unlinked as soon as made
        views = [spill.put(array) for array in arrays]
    assert list(tmp_path.iterdir()) == []
    for view, array in zip(views, arrays):
        np.testing.assert_array_equal(view, array)
        assert (view.dtype, view.shape) == (array.dtype, array.shape)
    assert all(mapped._mapping_of(v) is not None for v in views if v.size)
    with pytest.raises(ValueError, match="read-only"):
        views[0][0, 0] = 1.0


@linux_only
def test_release_hands_back_a_spilled_arrays_pages(tmp_path):
    values = np.arange(8 * 2**20, dtype=np.float32)  # 32 MiB
    with mapped.SpillFile(tmp_path) as spill:
        view = spill.put(values)
    before = _rss()
    assert float(view.sum(dtype=np.float64)) == float(values.sum(dtype=np.float64))
    assert _rss() - before > values.nbytes * 0.9  # read through the map, page by page
    mapped.release(view)
    assert _rss() - before < values.nbytes * 0.05
    np.testing.assert_array_equal(view, values)  # read again from the page cache


def _matmul_model(weight: onnx.TensorProto) -> onnx.ModelProto:
    """``y = x @ w`` for a 2-row ``x``, ``w`` the given initializer."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, weight.dims[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _mapped_matmul(tmp_path, rng, shape):
    """``(weight, its mapped view, a held y = x @ w model over the view)``."""
    weight = rng.standard_normal(shape).astype(np.float32)
    with mapped.SpillFile(tmp_path) as spill:
        view = spill.put(weight)
    return (
        weight,
        view,
        held_model(_matmul_model(numpy_helper.from_array(weight, "w")), {"w": view}),
    )


@linux_only
def test_a_fed_session_reads_mapped_weights_in_place_and_hands_the_pages_back(tmp_path):
    rng = np.random.default_rng(5)
    weight, _, held = _mapped_matmul(tmp_path, rng, (2048, 4096))  # 32 MiB
    x = rng.standard_normal((2, 2048)).astype(np.float32)
    built = numerics.session(held.model, prepack=False, fed=True)
    before = _rss()
    y = built.run(None, {"x": x})[0]
    assert _rss() - before < weight.nbytes * 0.05  # read, then handed back
    np.testing.assert_array_equal(
        y, numerics.session(held.model, prepack=False).run(None, {"x": x})[0]
    )


def test_a_read_only_module_shares_mapped_weights_and_a_trainable_one_copies_them(tmp_path):
    weight = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 100
    with mapped.SpillFile(tmp_path) as spill:
        view = spill.put(weight)
    proto = _matmul_model(placeholder("w", view))
    x = torch.randn(2, 64)
    for read_only in (True, False):
        module = reimport(proto, tensors={"w": view}, read_only=read_only)
        (tensor,) = [t for t in [*module.parameters(), *module.buffers()] if t.shape == (64, 48)]
        assert (tensor.data_ptr() == view.ctypes.data) == read_only
        with torch.no_grad():
            torch.testing.assert_close(module(x), x @ torch.from_numpy(weight), rtol=0, atol=0)


@linux_only
def test_a_loaded_model_holds_its_inline_weights_once(tmp_path):
    """Weights inside the proto are copied out at load and the parsed message let go: read in
    full, the graph holds them once (imported lazily it held them twice, the message kept alive
    by the constants not yet read). Measured in a child process with glibc's malloc thresholds
    fixed: in this one, freed blocks stay in the heap at glibc's choosing."""
    rng = np.random.default_rng(6)
    weights = [rng.standard_normal((1024, 4096)).astype(np.float32) for _ in range(4)]  # 64 MiB
    small = np.arange(4, dtype=np.float32)  # stays in the proto, as a lazy constant would
    path = tmp_path / "m.onnx"
    onnx.save(identity_model({f"w{i}": w for i, w in enumerate([*weights, small])}), path)
    tensors = io.load(path).gs.tensors()
    for i, w in enumerate(weights):
        np.testing.assert_array_equal(tensors[f"w{i}"].values, w)
    probe = [sys.executable, "-m", "tests.graph.inline_load_probe", str(path)]
    run = subprocess.run(probe, env=fixed_malloc_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout.splitlines()[-1])
    weight_bytes = sum(w.nbytes for w in weights)
    assert figures["read"] >= weight_bytes
    assert figures["held"] < weight_bytes * 1.25, figures


@linux_only
def test_a_session_given_mapped_weights_hands_their_pages_back_once_made(tmp_path):
    rng = np.random.default_rng(8)
    weight, view, held = _mapped_matmul(tmp_path, rng, (1024, 4096))  # 16 MiB
    for prepack in (True, False):
        built = numerics.session(held.model, prepack=prepack)  # onnxruntime reads the weight
        assert mapped_resident_bytes([view]) < weight.nbytes * 0.05
        x = rng.standard_normal((2, 1024)).astype(np.float32)
        plain = numerics.session(
            _matmul_model(numpy_helper.from_array(weight, "w")), prepack=prepack
        )
        np.testing.assert_array_equal(built.run(None, {"x": x})[0], plain.run(None, {"x": x})[0])
