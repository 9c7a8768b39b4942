"""Write a set of files so that readers see all of the old ones or all of the new ones.

``save_model`` writes three models that belong together (fake-quant, QDQ, deploy). Written one
after the other, a full disk or a Ctrl-C between two of them would leave a new fake-quant model
beside an old deploy model. :class:`StagedFiles` first writes every file completely to a temp file
beside its target (fsync'd; a model over 2 GB with its external data in a temp folder), and only
then renames them into place one after the other with SIGINT held back, so the renames (a few
microseconds) are the only window, and the caller marks the set unverified before it
(``verify_report``). Anything that fails before the renames leaves every old file as it was and
removes the temps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import onnx

from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.graph.output_target import prepare_target
from qdqforge.graph.serialized import Serialized, graph_serialized


class StagedFiles:
    """Temp files waiting to replace their targets together (module docstring)."""

    def __init__(self) -> None:
        self._moves: list[tuple[Path, Path]] = []
        self._folders: list[Path] = []

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.discard()

    def add_model(self, model: onnx.ModelProto | Graph, target: str | os.PathLike) -> Path:
        """Stage ``model`` for ``target`` (external data ``<name>.data`` above ~2 GB)."""
        if isinstance(model, Graph):
            data = graph_serialized(model)
        else:
            data = None if io.needs_external_data(model) else model.SerializeToString()
        if data is not None:
            return self.add_bytes(target, data)
        named, target = Path(target), io.prepare_data_target(target)
        folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=".qdqforge-"))
        self._folders.append(folder)
        data = io.save_external_to(model, folder / target.name)
        self._moves += [(data, target.parent / data.name), (folder / target.name, target)]
        return named

    def add_bytes(self, target: str | os.PathLike, data: bytes | Serialized) -> Path:
        """Stage ``data`` for ``target`` (written through a symlink, as ``graph.io`` does)."""
        named, target = Path(target), prepare_target(target)
        self._moves.append((io.write_temp(target, data), target))
        return named

    def commit(self) -> None:
        """Rename every staged file into place, SIGINT held back meanwhile."""
        with _sigint_deferred():
            io.move_into_place(self._moves)
            self._moves.clear()
        self.discard()

    def discard(self) -> None:
        """Remove what is still staged (nothing after a commit)."""
        for tmp, _ in self._moves:
            Path(tmp).unlink(missing_ok=True)
        self._moves.clear()
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()


@contextlib.contextmanager
def _sigint_deferred():
    """Hold SIGINT back (delivered after the block) where the platform and thread allow it."""
    usable = (
        hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
