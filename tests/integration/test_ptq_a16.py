"""PTQ with one layer's activations on 16 bits (AMCT's A16W8), end to end.

The seed flow (DMQ, ``quantize_model``, ``batch_num`` forwards, ``save_model``) on the small CNN
(``grouped`` on INT16) and the transformer test model (``encoder.layers.0.linear2``, the FFN
down-projection fed by GELU, on INT16) via ``override_layer_configs { ... ifmr_quantize {
dst_type: INT16 } }``. Checked:

* the record's ``act_type`` and int16 ``offset_d``;
* the layer's input quantization MSE against the same flow with that layer on INT8, on identical
  inputs: on a calibration batch 6.2e4 (CNN) and 6.6e4 (transformer) times smaller, asserted
  >= 1000x; on an unseen batch 4.7x and 6.1e4x: IFMR on 16 bits clips at the calibration maximum
  (wider clips only add rounding error there), so an unseen larger value is clipped, and that
  clipping error, the same on both grids, then dominates;
* the fake-quant ONNX (float ops, the INT16 layer's input clipped to [-32768, 32767]) against
  the calibration module on every grid in int8-equivalent steps (``compare_grid``): both keep
  float biases and compute the same ops, so every integer within one int8 step and at most 1e-3
  of them one step off (measured: none); outputs within 1e-5 of their range;
* the deploy ONNX (opset 21, int16 Q/DQ) in onnxruntime against the QDQ model, with the INT16
  layer as DequantizeLinear + float op and every INT8 Conv/Linear still ConvInteger/MatMulInteger;
* the save-time check on the int16 grid: the INT16 layer's scale 2% off in the deploy model is
  a VerificationError naming its tensor, 1e-5 off (float-noise sized) passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import qdqforge
from qdqforge.errors import VerificationError
from qdqforge.front.entry.example_inputs import load_example_inputs
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify import verify_saved_models
from qdqforge.front.save.write_models import calibration_reference
from qdqforge.graph import io, numerics
from qdqforge.graph.quant_compare import (
    activation_bits,
    compare_grid,
    grid_mismatch,
    run_with_tensors,
)
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from tests.helpers.deploy_flow import INTEGER_OPS, optimized_ops
from tests.helpers.dmq_flow import build as build_small
from tests.helpers.model_faults import broken_copy
from tests.helpers.ptq_flow import run_seed_flow
from tests.helpers.ptq_grids import calibration_grids
from tests.helpers.torch_models import build as build_test_model

A16_LAYER = {"cnn": "grouped", "transformer": "encoder.layers.0.linear2"}
INT8_INTEGER_LAYERS = {  # Conv/Linear layers that deploy as ConvInteger/MatMulInteger
    "cnn": {"conv1", "dw", "fc"},
    "transformer": {
        "embed",
        "encoder.layers.0.linear1",
        "encoder.layers.1.linear1",
        "encoder.layers.1.linear2",
        "head",
    },
}


@dataclass
class Flow:
    model: torch.nn.Module
    batches: list[torch.Tensor]
    onnx_file: Path
    record: Path
    calib: torch.nn.Module


def model_and_batches(name: str):
    if name == "cnn":
        return build_small("cnn")
    model, (x,) = build_test_model(name)
    torch.manual_seed(1)
    return model.eval(), [torch.randn_like(x) for _ in range(3)]


def run_flow(tmp_path: Path, name: str, a16: bool) -> Flow:
    model, batches = model_and_batches(name)
    override = (
        f'override_layer_configs {{ layer_name: "{A16_LAYER[name]}" calibration_config {{\n'
        "  dmq_balancer { migration_strength: 0.5 } ifmr_quantize { dst_type: INT16 } } }\n"
    )
    definition, cfg = tmp_path / "a16.cfg", tmp_path / "config.json"
    definition.write_text(
        "batch_num: 2\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n"
        + (override if a16 else "")
    )
    qdqforge.create_quant_config(str(cfg), model, batches[0], config_defination=str(definition))
    record, onnx_file = tmp_path / "r.txt", tmp_path / "m.onnx"
    calib = run_seed_flow(cfg, record, onnx_file, model, batches, forwards=2)
    return Flow(model, batches, onnx_file, record, calib)


@pytest.fixture(scope="module", params=list(A16_LAYER))
def saved(request, tmp_path_factory):
    name = request.param
    tmp = tmp_path_factory.mktemp(f"a16_{name}")
    flow = run_flow(tmp, name, a16=True)
    paths = qdqforge.save_model(str(flow.onnx_file), str(flow.record), str(tmp / "net"))
    return name, flow, paths, tmp


def test_record_holds_act_type_int16_and_an_int16_offset(saved):
    name, flow, _, _ = saved
    records = read_record(flow.record)
    rec = records[A16_LAYER[name]]
    assert rec.act_type == "INT16"
    assert -32768 <= rec.offset_d <= 32767 and not -128 <= rec.offset_d <= 127
    others = [r for layer, r in records.items() if layer != A16_LAYER[name]]
    assert others and all(r.act_type is None and -128 <= r.offset_d <= 127 for r in others)
    assert 'act_type: "INT16"' in flow.record.read_text()


def layer_io(calib: torch.nn.Module, layer: str, x: torch.Tensor):
    """The layer's input and its fake-quantized value in the calibrated module."""
    op = next(m for m in calib.modules() if isinstance(m, ActObserverOp) and m.layer == layer)
    seen = []
    hook = op.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        calib(x)
    hook.remove()
    return seen[0]


@pytest.mark.parametrize("name", list(A16_LAYER))
def test_int16_error_is_far_below_int8_on_the_same_input(tmp_path, name):
    layer = A16_LAYER[name]
    (tmp_path / "a16").mkdir()
    (tmp_path / "a8").mkdir()
    a16, a8 = run_flow(tmp_path / "a16", name, True), run_flow(tmp_path / "a8", name, False)
    ratios = []
    for x in (a16.batches[0], a16.batches[2]):  # a calibration batch, an unseen one
        x16, y16 = layer_io(a16.calib, layer, x)
        x8, y8 = layer_io(a8.calib, layer, x)
        assert torch.equal(x16, x8)  # layers before it are INT8 in both: the same input
        ratios.append(float((y8 - x8).pow(2).mean()) / float((y16 - x16).pow(2).mean()))
    assert ratios[0] >= 1000, ratios  # measured 6.2e4 (cnn), 6.6e4 (transformer)
    assert ratios[1] > 1, ratios  # beyond the calibrated range both clip: 4.7, 6.1e4


def test_fake_quant_matches_the_calibration_module(saved):
    name, flow, paths, _ = saved
    proto = onnx.load(str(paths.fake_quant))
    layer = A16_LAYER[name]
    bounds = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert (bounds[f"{layer}.quant.min"], bounds[f"{layer}.quant.max"]) == (-32768, 32767)
    bits = {k.removesuffix(".quant.out"): b for k, b in activation_bits(proto).items()}
    assert bits[layer] == 16 and set(bits.values()) == {8, 16}
    for x in flow.batches:
        feeds = numerics.feeds_for(proto, [x.numpy()])
        got = numerics.run(proto, feeds)[0]
        grids, calib_out = calibration_grids(flow.calib, x)
        onnx_grids = run_with_tensors(proto, [f"{k}.quant.out" for k in grids], feeds)
        found = {k: compare_grid(k, grids[k], onnx_grids[f"{k}.quant.out"], bits[k]) for k in grids}
        assert all(m.beyond_one == 0 and m.differ <= 1e-3 * m.total for m in found.values())
        if not any(m.differ for m in found.values()):
            assert np.abs(calib_out - got).max() <= 1e-5 * np.abs(calib_out).max()


def test_deploy_runs_int16_layer_in_float_and_int8_layers_on_integers(saved):
    name, flow, paths, tmp = saved
    layer = A16_LAYER[name]
    qdq, deploy = onnx.load(str(paths.qdq)), onnx.load(str(paths.deploy))
    assert {o.domain: o.version for o in deploy.opset_import}[""] == 21
    inits = {i.name: i for i in deploy.graph.initializer}
    integer = [n for n in deploy.graph.node if n.op_type in ("ConvInteger", "MatMulInteger")]
    assert {n.name.rsplit(".", 1)[0] for n in integer} == INT8_INTEGER_LAYERS[name]
    assert not any(n.name.startswith(f"{layer}.") for n in integer)
    assert inits[f"{layer}.quant.offset"].data_type == onnx.TensorProto.INT16
    weight = next(n for n in inits if n.startswith(f"{layer}.") and n.endswith(".int8"))
    assert inits[weight].data_type == onnx.TensorProto.INT8
    assert optimized_ops(tmp, paths.deploy) & INTEGER_OPS
    for x in flow.batches:
        feeds = numerics.feeds_for(qdq, [x.numpy()])
        mismatch = {m.tensor: m for m in grid_mismatch(qdq, deploy, feeds)}
        assert mismatch[f"{layer}.quant.out"].bits == 16
        assert all(m.beyond_one == 0 and m.differ <= 1e-3 * m.total for m in mismatch.values())
        want, got = numerics.run(qdq, feeds)[0], numerics.run(deploy, feeds)[0]
        assert np.abs(want - got).max() <= 1e-3 * np.abs(want).max()


def test_save_report_names_the_float_layer_and_its_grid(saved):
    name, _, _, tmp = saved
    report = json.loads((tmp / "net_verify.json").read_text())
    assert report["passed"] and report["deploy_float_layers"] == [A16_LAYER[name]]
    for comparison in report["comparisons"].values():
        if not comparison["tensors"]:  # the QDQ model's session: its tensors fused away
            continue
        bits = {t["tensor"]: t["bits"] for t in comparison["tensors"]}
        assert bits.pop(f"{A16_LAYER[name]}.quant.out") == 16
        assert set(bits.values()) <= {8}  # the QDQ session keeps only the unfused int16 pair


@pytest.mark.parametrize(("factor", "caught"), [(1.02, True), (1.0 + 1e-5, False)])
def test_a_wrong_int16_scale_is_caught_float_noise_is_not(saved, factor, caught):
    name, _, paths, tmp = saved
    tensor = f"{A16_LAYER[name]}.quant.out"
    broken = broken_copy(tmp, paths, f"{A16_LAYER[name]}.quant.scale", factor)
    x, out = load_example_inputs(tmp / "m.onnx"), broken.deploy.parent
    module = calibration_reference(io.load(tmp / "m.onnx"), read_record(tmp / "r.txt"))
    if not caught:  # a 1e-5 scale error moves int16 integers by <= 1 step: float-noise sized
        verify_saved_models(broken, x, out / "net", torch_module=module)
        return
    with pytest.raises(VerificationError, match=rf"qdq and deploy disagree: '{tensor}'"):
        verify_saved_models(broken, x, out / "net", torch_module=module)
