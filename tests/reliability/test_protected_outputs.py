"""Outputs the user protected: read-only files are refused, symlinks are written through.

``test_write_follows_the_rule`` is a hypothesis property over what already sits at the target
(nothing, a writable or read-only file, a symlink to either, to a new file, a chain of links,
a dangling link into a missing folder, a loop, a directory): ``atomic_write_bytes`` either
writes the new bytes into the file the path resolves to, leaving every link a link, or raises
OutputError and leaves every file as it was. ``test_save_model_writes_through_a_symlink`` is the
issue's case: a deployed model behind a link gets the new content.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import qdqforge
from qdqforge.errors import OutputError
from qdqforge.graph.io import atomic_write_bytes

LAYOUTS = (
    "absent",
    "file",
    "read_only",
    "link_to_file",
    "link_to_read_only",
    "link_to_new_file",
    "link_chain",
    "dangling_into_missing_folder",
    "loop",
    "directory",
)
REFUSED = {"read_only", "link_to_read_only", "dangling_into_missing_folder", "loop", "directory"}


def _lay_out(root: Path, layout: str) -> Path:
    target, real = root / "out.bin", root / "real" / "model.bin"
    real.parent.mkdir()
    if layout in ("file", "read_only", "link_to_file", "link_to_read_only", "link_chain"):
        real.write_bytes(b"old")
        if "read_only" in layout:
            real.chmod(0o444)
    if layout in ("file", "read_only"):
        real.rename(target)
    elif layout in ("link_to_file", "link_to_read_only", "link_to_new_file"):
        target.symlink_to(real)
    elif layout == "link_chain":
        (root / "middle").symlink_to(real)
        target.symlink_to(root / "middle")
    elif layout == "dangling_into_missing_folder":
        target.symlink_to(root / "missing" / "model.bin")
    elif layout == "loop":
        target.symlink_to(target)
    elif layout == "directory":
        target.mkdir()
    return target


def _snapshot(root: Path) -> dict[str, object]:
    state = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = ("link", os.readlink(path))
        elif path.is_file():
            state[key] = ("file", path.read_bytes(), path.stat().st_mode & 0o777)
        else:
            state[key] = ("dir",)
    return state


@given(layout=st.sampled_from(LAYOUTS), data=st.binary(max_size=64))
def test_write_follows_the_rule(layout, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        target = _lay_out(root, layout)
        links = {p: os.readlink(p) for p in root.rglob("*") if p.is_symlink()}
        before = _snapshot(root)
        try:
            atomic_write_bytes(target, data)
        except OutputError as error:
            assert layout in REFUSED, error
            assert _snapshot(root) == before
            return
        assert layout not in REFUSED
        assert Path(os.path.realpath(target)).read_bytes() == data
        assert {p: os.readlink(p) for p in root.rglob("*") if p.is_symlink()} == links
        assert not [p for p in root.rglob("*.tmp")]


def test_save_model_writes_through_a_symlink(world, tmp_path):
    qdqforge.save_model(str(world.onnx), str(world.record), str(tmp_path / "a" / "net"))
    deployed = tmp_path / "deployed" / "current.onnx"
    deployed.parent.mkdir()
    deployed.write_bytes(b"the old deployed model")
    out = tmp_path / "b"
    out.mkdir()
    (out / "net_deploy_model.onnx").symlink_to(deployed)
    qdqforge.save_model(str(world.onnx), str(world.record), str(out / "net"))
    assert (out / "net_deploy_model.onnx").is_symlink()
    assert deployed.read_bytes() == (tmp_path / "a" / "net_deploy_model.onnx").read_bytes()


@pytest.mark.parametrize("layout", sorted(REFUSED - {"directory"}))
def test_refusals_name_the_path(tmp_path, layout):
    target = _lay_out(tmp_path, layout)
    with pytest.raises(OutputError, match=r"out\.bin"):
        atomic_write_bytes(target, b"new")
