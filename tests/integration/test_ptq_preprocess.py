"""quantize_preprocess: DMQ factors in the record equal numpy on the same activations.

The activations are captured with forward pre-hooks on the ORIGINAL model; the weight maxima come
from BN-folded weights computed here in numpy; factors ``s_j = a_j^a / w_j^(1-a)`` with ``a_j``
the running max over every forward (docs/amct.md §4.4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ConfigError
from qdqforge.front.config import load_quant_config
from qdqforge.front.record.file import read_record
from tests.helpers.dmq_flow import ALPHA, MODELS, build, write_config
from tests.helpers.state import assert_untouched, snapshot
from tests.helpers.torch_models import MODEL_NAMES
from tests.helpers.torch_models import build as build_test_model


def captured_absmax(model: nn.Module, names, batches) -> dict[str, np.ndarray]:
    """Running per-input-channel max |X| of each layer over ``batches``, from torch hooks."""
    seen: dict[str, np.ndarray] = {}

    def hook(name, axis):
        def record(module, args):
            x = np.abs(args[0].detach().numpy().astype(np.float64))
            batch = x.max(axis=tuple(d for d in range(x.ndim) if d != axis % x.ndim))
            seen[name] = batch if name not in seen else np.maximum(seen[name], batch)

        return record

    handles = [
        model.get_submodule(n).register_forward_pre_hook(
            hook(n, -1 if isinstance(model.get_submodule(n), nn.Linear) else 1)
        )
        for n in names
    ]
    with torch.no_grad():
        for x in batches:
            model(x)
    for handle in handles:
        handle.remove()
    return seen


def folded_weight(model: nn.Module, name: str) -> np.ndarray:
    w = model.get_submodule(name).weight.detach().numpy().astype(np.float64)
    if name == "conv1" and hasattr(model, "bn1"):
        bn = model.bn1
        gamma, var = bn.weight.detach().numpy(), bn.running_var.numpy()
        w = w * (gamma / np.sqrt(var.astype(np.float64) + bn.eps))[:, None, None, None]
    return w


def weight_absmax(module: nn.Module, w: np.ndarray) -> np.ndarray:
    w = np.abs(w)
    if isinstance(module, nn.Linear):
        return w.max(axis=0)
    if isinstance(module, nn.ConvTranspose2d):
        return w.reshape(w.shape[0], -1).max(axis=1)
    cout_g, cin_g = w.shape[0] // module.groups, w.shape[1]
    rows = [
        w[(j // cin_g) * cout_g : (j // cin_g + 1) * cout_g, j % cin_g]
        for j in range(module.groups * cin_g)
    ]
    return np.array([r.max() for r in rows])


def expected_factors(model, names, batches) -> dict[str, np.ndarray]:
    acts = captured_absmax(model, names, batches)
    out = {}
    for name in names:
        a = acts[name]
        w = weight_absmax(model.get_submodule(name), folded_weight(model, name))
        assert (a > 0).all() and (w > 0).all(), "test data must avoid the zero-channel rules"
        out[name] = a**ALPHA / w ** (1 - ALPHA)
    return out


@pytest.mark.parametrize("name", MODELS, ids=list(MODELS))
def test_factors_match_numpy_over_several_forwards(tmp_path, name):
    model, batches = build(name)
    before = snapshot(model)
    cfg, record = write_config(tmp_path, model, batches[0]), tmp_path / "record.txt"
    layers = [c.name for c in load_quant_config(cfg).layers if c.dmq_balancer_param is not None]

    calib = qdqforge.quantize_preprocess(str(cfg), str(record), model, batches[0])
    assert read_record(record) == {}
    for count, x in enumerate(batches, start=1):
        with torch.no_grad():
            torch.testing.assert_close(calib(x), model(x), rtol=1e-5, atol=1e-5)
        got = read_record(record)
        want = expected_factors(model, layers, batches[:count])
        assert sorted(got) == sorted(layers)
        for layer in layers:
            factors = np.array(got[layer].tensor_balance_factor)
            np.testing.assert_allclose(factors, want[layer], rtol=1e-5, err_msg=layer)
    assert_untouched(model, before)


def test_all_layer_kinds_are_balanced(tmp_path):
    model, batches = build("cnn")
    cfg = write_config(tmp_path, model, batches[0])
    names = [c.name for c in load_quant_config(cfg).layers if c.dmq_balancer_param is not None]
    assert names == ["conv1", "dw", "grouped", "up", "fc"]


def test_config_without_dmq_is_a_config_error(tmp_path):
    model, batches = build("cnn")
    before = snapshot(model)
    cfg = write_config(tmp_path, model, batches[0], dmq=False)
    with pytest.raises(ConfigError, match="dmq_balancer_param"):
        qdqforge.quantize_preprocess(str(cfg), str(tmp_path / "r.txt"), model, batches[0])
    assert not (tmp_path / "r.txt").exists()
    assert_untouched(model, before)


@pytest.mark.parametrize("name", MODEL_NAMES, ids=list(MODEL_NAMES))
def test_test_models_keep_outputs_and_mode(tmp_path, name):
    model, inputs = build_test_model(name)
    model.eval()
    cfg, record = write_config(tmp_path, model, inputs), tmp_path / "record.txt"
    config = load_quant_config(cfg)
    calib = qdqforge.quantize_preprocess(str(cfg), str(record), model, inputs)
    assert not calib.training
    with torch.no_grad():
        torch.testing.assert_close(calib(*inputs), model(*inputs), rtol=1e-5, atol=1e-5)
    balanced = {c.name for c in config.layers if c.dmq_balancer_param and c.quant_enable}
    assert balanced and set(read_record(record)) == balanced
