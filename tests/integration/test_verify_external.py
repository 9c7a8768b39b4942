"""The save-time check on models with external data (over 2 GB), taken here at 4 KiB.

The saved models' external weights are read in place (maps of their ``.data`` files), the PTQ
reference wraps the modified graph's mapped weights and the reference stage feeds weights as
inputs; every comparison must find what the same save without external data finds, except the
fake-quant model's default-session run, which is left out and listed under ``skipped``. A fault
written into a ``.data`` file is named like one in a proto.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import uses_external_data

import qdqforge
from qdqforge.errors import VerificationError
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify import FLOAT_SESSION, verify_saved_models
from qdqforge.front.save.write_models import calibration_reference
from qdqforge.graph import io
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.torch_models import build

DEEP = "layers.3.conv2"


def _save(tmp, model, x):
    cfg = tmp / "c.json"
    qdqforge.create_quant_config(str(cfg), model, (x,))
    run_seed_flow(cfg, tmp / "r.txt", tmp / "m.onnx", model, [x], with_dmq=False)
    paths = qdqforge.save_model(str(tmp / "m.onnx"), str(tmp / "r.txt"), str(tmp / "net"))
    return paths, json.loads((tmp / "net_verify.json").read_text())


@pytest.fixture(scope="module")
def saves(tmp_path_factory):
    model, (x,) = build("bottleneck_resnet")
    model.eval()
    inline = _save(tmp_path_factory.mktemp("inline"), model, x)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(io, "EXTERNAL_THRESHOLD", 4096)
        tmp = tmp_path_factory.mktemp("external")
        external = _save(tmp, model, x)
    return inline, external, tmp, x


def test_external_data_saves_are_verified_like_inline_ones(saves):
    (_, inline), (paths, external), _, _ = saves
    for path in paths:
        assert path.with_name(path.name + ".data").exists()
    assert external["status"] == inline["status"] == "passed"
    assert FLOAT_SESSION in external["skipped"] and "skipped" not in inline
    mine = external["comparisons"]
    theirs = {k: c for k, c in inline["comparisons"].items() if k != FLOAT_SESSION}
    assert mine.keys() == theirs.keys() and len(mine) >= 6
    for name, comparison in theirs.items():
        for key in ("total", "differ", "max_steps", "tensors"):
            assert mine[name][key] == comparison[key], (name, key)


def _scale_external_weight(model_path, name: str, factor: float) -> None:
    """Multiply initializer ``name`` by ``factor`` where it lies, in the model's ``.data``."""
    proto = onnx.load(str(model_path), load_external_data=False)
    tensor = next(t for t in proto.graph.initializer if t.name == name)
    assert uses_external_data(tensor)
    info = {e.key: e.value for e in tensor.external_data}
    count = int(np.prod(tensor.dims))
    data = np.memmap(model_path.parent / info["location"], np.float32, "r+",
                     offset=int(info.get("offset", 0)), shape=(count,))  # fmt: skip
    data *= factor
    data.flush()


def test_a_fault_in_external_weights_is_named(saves, tmp_path):
    _, (paths, _), tmp, x = saves
    copies = {}
    for key, path in paths._asdict().items():
        copies[key] = tmp_path / path.name
        copies[key].write_bytes(path.read_bytes())
        data = path.with_name(path.name + ".data")
        (tmp_path / data.name).write_bytes(data.read_bytes())
    proto = onnx.load(str(copies["fake_quant"]), load_external_data=False)
    conv = next(n for n in proto.graph.node if n.input[0] == f"{DEEP}.dequant.out")
    _scale_external_weight(copies["fake_quant"], conv.input[1], 1.05)
    records = read_record(tmp / "r.txt")
    reference = calibration_reference(io.load(tmp / "m.onnx", mapped=True), records)
    with pytest.raises(VerificationError) as caught:
        verify_saved_models(
            type(paths)(**copies), (x,), str(tmp_path / "check"), torch_module=reference
        )
    assert "torch and fake_quant disagree" in str(caught.value)
    assert "'layers.3.conv3.quant.out'" in str(caught.value)  # the next layer's input
