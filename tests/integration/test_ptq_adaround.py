"""Seed flow with ``ada_quantize``: quantize_model -> batch_num forwards -> save_model.

The small CNN has a Conv+BN, a depthwise and a grouped conv, a ConvTranspose and a Linear. The
AdaRound integers are caught where the kernel returns them; then: the record's scale_w is ARQ's
(an ARQ run of the same model), every integer is within one step of ARQ's and some moved, the
modified ONNX and the deploy model's int8 weights hold exactly those integers, the fake-quant
model in onnxruntime agrees with the calibration module as test_ptq_save checks it, and the
user's model is untouched.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch

import qdqforge
import qdqforge.front.ptq.adaround as ptq_adaround
from qdqforge.front.record.file import read_record
from qdqforge.graph import numerics
from qdqforge.runtime.kernels.arq import to_channel_major
from tests.helpers.dmq_flow import build
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.ptq_grids import assert_grids_match
from tests.helpers.state import assert_untouched, snapshot

LAYERS = ("conv1", "dw", "grouped", "up", "fc")
LAYOUT = {"up": (1, 1)}  # ConvTranspose: output channel on axis 1 (groups 1); others axis 0
ADA_CFG = "batch_num: 2\ncommon_config { ada_quantize { num_iteration: 150 } }\n"


def run_flow(tmp_path, cfg_text: str):
    model, batches = build("cnn")
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "q.cfg").write_text(cfg_text)
    cfg, record, onnx_file = tmp_path / "c.json", tmp_path / "r.txt", tmp_path / "m.onnx"
    qdqforge.create_quant_config(
        str(cfg), model, batches[0], config_defination=str(tmp_path / "q.cfg")
    )
    before = snapshot(model)
    calib = run_seed_flow(cfg, record, onnx_file, model, batches, forwards=2, with_dmq=False)
    paths = qdqforge.save_model(str(onnx_file), str(record), str(tmp_path / "net"))
    assert_untouched(model, before)
    return batches, calib, record, onnx_file, paths


def integers(proto: onnx.ModelProto, layer: str, scale=None) -> np.ndarray:
    """``[C, K]`` integers of a layer: its int8 initializer, or rint(W / scale) of its .arq one."""
    suffix = ".arq" if scale is not None else "int8"
    init = next(i for i in proto.graph.initializer
                if i.name.startswith(f"{layer}.") and i.name.endswith(suffix))  # fmt: skip
    w = onnx.numpy_helper.to_array(init).astype(np.float64)
    if layer == "fc" and scale is None:
        w = w.T  # deploy MatMulInteger weights are stored [Cin, Cout]
    axis, groups = LAYOUT.get(layer, (0, 1))
    m = to_channel_major(torch.from_numpy(w), axis, groups).numpy()
    return m if scale is None else np.rint(m / np.asarray(scale).reshape(-1, 1))


@pytest.fixture(scope="module")
def ada_run(tmp_path_factory):
    learnt = []

    def spy(*args, **kwargs):
        result = kernel(*args, **kwargs)
        learnt.append(result.integers.numpy())
        return result

    kernel, tmp_path = ptq_adaround.adaround, tmp_path_factory.mktemp("adaround")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ptq_adaround, "adaround", spy)
        run = run_flow(tmp_path / "ada", ADA_CFG)
    arq = run_flow(tmp_path / "arq", "batch_num: 2\n")
    return run, arq, dict(zip(LAYERS, learnt, strict=True))


def test_saved_models_carry_the_adaround_integers(ada_run):
    (_, _, record, onnx_file, paths), (_, _, arq_record, arq_onnx, _), learnt = ada_run
    records, arq_records = read_record(record), read_record(arq_record)
    modified, deploy, arq_modified = (
        onnx.load(str(p)) for p in (onnx_file, paths.deploy, arq_onnx)
    )
    moved = 0
    for layer in LAYERS:
        assert records[layer].scale_w == arq_records[layer].scale_w
        assert set(records[layer].offset_w) == {0}
        ints = learnt[layer]
        nearest = integers(arq_modified, layer, arq_records[layer].scale_w)
        assert np.abs(ints - nearest).max() <= 1
        moved += int((ints != nearest).sum())
        np.testing.assert_array_equal(integers(modified, layer, records[layer].scale_w), ints)
        np.testing.assert_array_equal(integers(deploy, layer), ints, err_msg=layer)
    assert moved > 0


def test_fake_quant_model_matches_the_calibration_module(ada_run):
    (batches, calib, _, _, paths), _, _ = ada_run
    proto = onnx.load(str(paths.fake_quant))
    onnx.checker.check_model(proto)
    for x in batches:
        feeds = numerics.feeds_for(proto, [x.numpy()])
        got = numerics.run(proto, feeds)[0]
        assert_grids_match(calib, proto, x, feeds, got)


@pytest.mark.parametrize("setting,shown", (("0", False), ("1", True)))
def test_adaround_progress_bar_follows_the_environment(tmp_path, monkeypatch, setting, shown):
    monkeypatch.setenv("QDQFORGE_PROGRESS", setting)
    tty = io.StringIO()
    tty.isatty = lambda: True  # tqdm shows bars on terminals only
    monkeypatch.setattr("sys.stderr", tty)
    run_flow(tmp_path, ADA_CFG.replace("150", "20"))
    assert ("adaround" in tty.getvalue()) is shown
