"""``qdqforge doctor``: exit codes, the printed summary and the three files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qdqforge.cli.main import main
from qdqforge.front.analysis.doctor.html import read_report_html
from qdqforge.front.config import load_quant_config
from tests.helpers.doctor_models import mlp_config, mlp_input, planted_mlp

MODEL_FILE = """
from tests.helpers.doctor_models import planted_mlp

def build():
    return planted_mlp()

not_a_model = 42
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli_doctor")
    model_file, inputs = tmp_path / "net.py", tmp_path / "x.npz"
    model_file.write_text(MODEL_FILE)
    np.savez(inputs, mlp_input().numpy())
    cfg = mlp_config(tmp_path / "config.json", planted_mlp(), mlp_input())
    return str(cfg), f"{model_file}:build", str(inputs)


def test_doctor_writes_page_json_and_skip_config(setup, tmp_path, capsys):
    cfg, model, inputs = setup
    page, data, skip = tmp_path / "out" / "r.html", tmp_path / "r.json", tmp_path / "skip.json"
    args = ["doctor", cfg, "--model", model, "--inputs", inputs, "-o", str(page), "--skip-db", "6"]
    assert main([*args, "--json", str(data), "--skip-config", str(skip)]) == 0
    out = capsys.readouterr().out
    assert "3 layers analyzed; all quantized: SQNR" in out
    assert "skip (1): fc2" in out
    report = json.loads(data.read_text())
    assert report["skip"] == ["fc2"] and report["ranking"][0] == "fc2"
    assert read_report_html(page).skip == ("fc2",)
    assert not load_quant_config(skip).layer("fc2").quant_enable
    assert load_quant_config(skip).layer("fc1").quant_enable


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nomodule", "expected package.module:name"),
        (":build", "expected"),
        ("X:not_a_model", "gave a int"),
    ],
    ids=["no-colon", "no-source", "not-a-module"],
)
def test_bad_model_is_usage_exit_2(setup, capsys, spec, message):
    cfg, model, inputs = setup
    spec = spec.replace("X", model.rpartition(":")[0])
    assert main(["doctor", cfg, "--model", spec, "--inputs", inputs]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_and_bad_inputs_are_exit_1(setup, tmp_path, capsys):
    cfg, model, inputs = setup
    missing = str(tmp_path / "nope.json")
    assert main(["doctor", missing, "--model", model, "--inputs", inputs]) == 1
    assert "nope.json" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    assert main(["doctor", cfg, "--model", model, "--inputs", str(bad)]) == 1
    assert "cannot read inputs" in capsys.readouterr().err
