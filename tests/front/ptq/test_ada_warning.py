"""The doctor and auto-calibration's layer ranking round weights to nearest (ARQ); with
``ada_quantize`` layers in the config they say so in a warning naming those layers."""

from __future__ import annotations

import logging

import pytest

import qdqforge
from qdqforge.front.analysis.layer_sensitivity import float_graph
from tests.helpers.dmq_flow import build

ADA_CFG = "batch_num: 1\ncommon_config { ada_quantize { num_iteration: 10 } }\n"
ARQ_CFG = "batch_num: 1\n"


def config(tmp_path, model, x, text):
    (tmp_path / "q.cfg").write_text(text)
    cfg = tmp_path / "c.json"
    qdqforge.create_quant_config(str(cfg), model, x, config_defination=str(tmp_path / "q.cfg"))
    return cfg


def ada_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ada_quantize layer" in r.getMessage()]


@pytest.mark.parametrize(
    ("text", "warned"), [(ADA_CFG, True), (ARQ_CFG, False)], ids=["ada", "arq"]
)
def test_doctor_warns_about_ada_layers(tmp_path, caplog, text, warned):
    model, batches = build("cnn")
    cfg = config(tmp_path, model, batches[0], text)
    with caplog.at_level(logging.WARNING):
        qdqforge.analyze(str(cfg), model, batches[0])
    messages = ada_warnings(caplog)
    assert bool(messages) == warned
    if warned:
        assert messages[0].startswith("doctor:") and "conv1" in messages[0]


def test_layer_ranking_warns_about_ada_layers(tmp_path, caplog):
    model, batches = build("cnn")
    cfg = config(tmp_path, model, batches[0], ADA_CFG)
    with caplog.at_level(logging.WARNING):
        float_graph(str(cfg), None, model, batches[0])
    assert any(m.startswith("layer sensitivity:") for m in ada_warnings(caplog))
