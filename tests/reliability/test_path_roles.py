"""One path in two roles is refused by every public function, before anything is written.

``test_alias_is_refused_and_nothing_changes`` is a hypothesis property: any public call, any
two of its file roles (at least one an output), spelled as the same string, through ``..``, a
symlink or a hard link: OutputError naming both roles, and every file in the folder exactly as
it was (the check runs before the export). ``save_model`` and ``save_quant_retrain_model``
check their inputs against every file the save writes (``quant_save.saved_outputs``: the three
models and ``_verify.json``) and, for QAT, the record against the config.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qdqforge
from qdqforge.errors import OutputError
from qdqforge.graph.path_roles import check_roles
from tests.reliability.world import net_and_input

ALIASES = ("same", "dotdot", "symlink", "hardlink")


def _calls(model, x):
    """call name -> (function of role paths, input roles, output roles)."""
    return {
        "create_quant_config": (
            lambda p: qdqforge.create_quant_config(
                p["config_file"], model, x, config_defination=p["config_defination"]
            ),
            ["config_defination"],
            ["config_file"],
        ),
        "create_quant_retrain_config": (
            lambda p: qdqforge.create_quant_retrain_config(
                p["config_file"], model, x, config_defination=p["config_defination"]
            ),
            ["config_defination"],
            ["config_file"],
        ),
        "quantize_preprocess": (
            lambda p: qdqforge.quantize_preprocess(p["config_file"], p["record_file"], model, x),
            ["config_file"],
            ["record_file"],
        ),
        "quantize_model": (
            lambda p: qdqforge.quantize_model(
                p["config_file"], p["modified_onnx_file"], p["record_file"], model, x
            ),
            ["config_file"],
            ["modified_onnx_file", "record_file"],
        ),
        "create_quant_retrain_model": (
            lambda p: qdqforge.create_quant_retrain_model(
                p["config_file"], model, p["record_file"], x
            ),
            ["config_file"],
            ["record_file"],
        ),
        "restore_quant_retrain_model": (
            lambda p: qdqforge.restore_quant_retrain_model(
                p["config_file"], model, p["record_file"], x, p["pth_file"]
            ),
            ["config_file", "pth_file"],
            ["record_file"],
        ),
    }


MODEL, X = net_and_input()
CALLS = _calls(MODEL, X)


def _pairs():
    for name, (_, inputs, outputs) in CALLS.items():
        roles = inputs + outputs
        for i, first in enumerate(roles):
            for second in roles[i + 1 :]:
                if second in outputs:
                    yield name, first, second


PAIRS = sorted(_pairs())


def _paths(folder: Path, call: str, first: str, second: str, alias: str) -> dict[str, str]:
    _, inputs, outputs = CALLS[call]
    paths = {}
    for role in inputs + outputs:
        path = folder / f"{role}.txt"
        if role in inputs:
            path.write_text(f"the user's {role}\n")
        paths[role] = str(path)
    original = Path(paths[first])
    original.touch()
    if alias == "same":
        paths[second] = str(original)
    elif alias == "dotdot":
        paths[second] = str(folder / "sub" / ".." / original.name)
        (folder / "sub").mkdir()
    elif alias == "symlink":
        (folder / "link").symlink_to(original)
        paths[second] = str(folder / "link")
    else:
        os.link(original, folder / "hard")
        paths[second] = str(folder / "hard")
    return paths


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    return {
        p.relative_to(folder).as_posix(): (os.readlink(p) if p.is_symlink() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(PAIRS), alias=st.sampled_from(ALIASES), data=st.data())
def test_alias_is_refused_and_nothing_changes(tmp_path_factory, pair, alias, data):
    call, first, second = pair
    folder = tmp_path_factory.mktemp("roles")
    paths = _paths(folder, call, first, second, alias)
    before = _snapshot(folder)
    with pytest.raises(OutputError) as error:
        CALLS[call][0](paths)
    assert f"{call}: {second} is the same file as {first}" in str(error.value)
    assert _snapshot(folder) == before


def test_every_pair_of_every_call_is_covered():
    assert len(PAIRS) == 9
    assert {call for call, _, _ in PAIRS} == set(CALLS)


def test_inputs_may_share_a_path(tmp_path):
    shared = tmp_path / "same.txt"
    shared.write_text("x")
    check_roles("f", inputs={"a": shared, "b": shared}, outputs={"c": tmp_path / "out"})


def test_save_model_refuses_an_output_over_its_input(world, tmp_path):
    onnx_copy = tmp_path / "net_fake_quant_model.onnx"
    onnx_copy.write_bytes(world.onnx.read_bytes())
    with pytest.raises(OutputError, match="modified_onnx_file"):
        qdqforge.save_model(str(onnx_copy), str(world.record), str(tmp_path / "net"))
    assert onnx_copy.read_bytes() == world.onnx.read_bytes()


def test_save_quant_retrain_model_refuses_record_over_config(world, tmp_path):
    config = tmp_path / "retrain.json"
    config.write_bytes(world.qat_config.read_bytes())
    qat = qdqforge.create_quant_retrain_model(
        str(config), world.model, str(tmp_path / "r"), world.x
    )
    with torch.no_grad():
        qat(world.x)
    with pytest.raises(OutputError, match="record_file is the same file as config_file"):
        qdqforge.save_quant_retrain_model(
            str(config), qat, str(config), str(tmp_path / "net"), world.x
        )
    assert config.read_bytes() == world.qat_config.read_bytes()
