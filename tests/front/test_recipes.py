"""The named pipelines of front/recipes.py compute what the torch model computes, with their
options reaching the passes: ``fold_bn`` folds every BN except ``skip_fusion_layers`` (none when
``do_fusion`` is off), ``apply_balance`` is an identity until quantized, and ``arq_weights``
hands on scales whose grid holds the weights it wrote. onnxruntime with ORT_DISABLE_ALL
(graph.numerics)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.front import recipes
from qdqforge.front.config.layers import find_quant_layers
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.graph import numerics
from qdqforge.graph.layers import WEIGHT_AXIS, layer_site


def conv_bn_linear() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)
    )
    with torch.no_grad():  # BN statistics that are not the identity
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, x = conv_bn_linear(), torch.randn(2, 3, 6, 6)
    path = tmp_path_factory.mktemp("recipes") / "c.json"
    qdqforge.create_quant_config(str(path), model, x)
    layers = find_quant_layers(model, x)
    return model, x, qdqforge.export(model, x), load_quant_config(path, layers)


def batch_norms(graph) -> int:
    return sum(node.op == "BatchNormalization" for node in graph.gs.nodes)


@pytest.mark.parametrize(
    "fusion, skipped, left", [(True, (), 0), (True, ("0",), 1), (False, (), 1)]
)
def test_ptq_float_graph_folds_bn_as_configured_and_keeps_outputs(exported, fusion, skipped, left):
    model, x, proto, config = exported
    config = dataclasses.replace(config, do_fusion=fusion, skip_fusion_layers=skipped)
    factors = {"0": [0.5, 2.0, 4.0]}  # per input channel of the conv: an identity in float
    graph = recipes.ptq_float_graph(config, factors).run(proto)
    assert batch_norms(graph) == left
    assert sum(node.op == "Mul" and node.name.endswith(".mul") for node in graph.gs.nodes) == 1
    got = numerics.run(graph, numerics.feeds_for(graph, [x.numpy()]))[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_ptq_modified_graph_hands_on_the_grid_of_its_weights(exported):
    _, _, proto, config = exported
    recipe = recipes.ptq_modified_graph(config, {})
    graph = recipe.run(proto)
    scales = recipe.context.arq_weights.scale_w
    assert sorted(scales) == ["0", "4"]
    for name, scale in scales.items():
        site = layer_site(graph, name)
        weight = np.asarray(site.weight.values, np.float64)
        axis = WEIGHT_AXIS[site.weight_layout]
        shape = [-1 if i == axis else 1 for i in range(weight.ndim)]
        steps = weight / np.asarray(scale, np.float64).reshape(shape)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # steps of the grid
        integers = np.round(steps)
        assert integers.min() >= -128 and integers.max() <= 127  # int8


def test_every_front_pipeline_is_a_recipe():
    """No module of front/ but recipes.py runs passes itself: each flow's pipeline has one home."""
    front = Path(__file__).resolve().parents[2] / "front"
    callers = sorted(
        str(path.relative_to(front))
        for path in front.rglob("*.py")
        if path.name != "recipes.py" and _calls_run_pipeline(path)
    )
    assert callers == []


def _calls_run_pipeline(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "qdqforge.passes.infra.pipeline":
            return True
        if isinstance(node, ast.Name) and node.id == "run_pipeline":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "run_pipeline":
            return True
    return False
