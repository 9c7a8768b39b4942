"""Atomic writes give files the mode a plain open() would: 0666 minus umask, or the old file's."""

from __future__ import annotations

import os
import stat

from qdqforge.graph import io


def test_new_file_gets_the_umask_mode_and_an_old_file_keeps_its_mode(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "record.txt"
    io.atomic_write_text(target, "a")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o640)
    io.atomic_write_text(target, "b")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["record.txt"]  # no temp file left
