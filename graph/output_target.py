"""Where an output really goes, and the outputs qdqforge refuses to replace.

One rule for every file qdqforge writes (``graph.io``'s atomic writers call
:func:`prepare_target`):

* a symlink is written through: the file behind it is replaced atomically (temp file in *its*
  folder, then ``os.replace``) and the link stays, so a deployed model behind a link is updated;
  a link that loops or points into a missing folder is an OutputError;
* a read-only file (no write permission for this process, or no write bit at all: root would
  ignore the mode) is an OutputError, never replaced;
* a directory in the way, or a folder that cannot be created, is an OutputError naming the path.

A hard link is replaced like any other file: its other names keep the old content.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from qdqforge.errors import OutputError

log = logging.getLogger(__name__)


def prepare_target(target: str | os.PathLike) -> Path:
    """The file to write for ``target``, its folder created; OutputError when it cannot be.

    The one rule for outputs the user protected: a symlink is written through (the file behind
    it is replaced atomically, the link stays); a read-only file (no write permission for us,
    or no write bit at all, which root would otherwise ignore) is refused, never replaced.

    Returns:
        The path to replace: ``target``, or the file a symlink ``target`` points to.

    Raises:
        OutputError: ``target`` is a directory or read-only, a symlink that loops or points
            into a missing folder, or its folder cannot be created.
    """
    named = Path(target)
    target = _through_links(named)
    if target.is_dir():
        raise OutputError(
            f"cannot write {os.fspath(target)!r}: it is a directory; give a file path"
        )
    refuse_read_only(target, named)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(target, e) from e
    return target


def _through_links(target: Path) -> Path:
    if not target.is_symlink():
        return target
    resolved = Path(os.path.realpath(target))
    if resolved.is_symlink() or not resolved.parent.is_dir():
        why = "a symlink loop" if resolved.is_symlink() else "it points into a missing folder"
        raise OutputError(
            f"cannot write {os.fspath(target)!r}: {why} ({os.readlink(target)!r}); fix the link "
            "or choose another path"
        )
    log.debug("writing %s through the symlink %s", resolved, target)
    return resolved


def refuse_read_only(path: Path, named: Path | None = None) -> None:
    """OutputError when ``path`` is an existing file we must not replace (read-only).

    Args:
        path: the file to replace.
        named: the path the user gave, when a symlink led from it to ``path``.

    Raises:
        OutputError: names the file (and the link) and its mode.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent: nothing to protect
    if stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(path, os.W_OK)):
        via = (
            f" (the symlink {os.fspath(named)!r} points to it)" if named not in (None, path) else ""
        )
        raise OutputError(
            f"cannot write {os.fspath(path)!r}{via}: the file is read-only (mode "
            f"{stat.S_IMODE(mode):o}); qdqforge does not replace files you protected: make it "
            "writable (chmod u+w) or choose another path"
        )


def output_error(target: Path, e: OSError) -> OutputError:
    """An OSError met while writing ``target`` as an OutputError naming it."""
    reason = e.strerror or str(e)
    return OutputError(
        f"cannot write {os.fspath(target)!r}: {reason}"
        + (f" ({e.filename})" if e.filename and os.fspath(e.filename) != os.fspath(target) else "")
        + "; choose a writable folder"
    )


def refuse_linked_data(data: Path) -> None:
    """OutputError when an external data file ``data`` is a symlink (its location is relative
    to the model: it must be a regular file beside it)."""
    if data.is_symlink():
        raise OutputError(
            f"cannot write {os.fspath(data)!r}: the external data file is a symlink; qdqforge "
            "writes it as a regular file beside the model: remove the link or choose another path"
        )
