"""One path in two roles: refused before anything is read or written.

Every public call names each file by its role (``config_file``, ``record_file``,
``modified_onnx_file``, the ``<save_path>_*`` outputs, ...). An output that is the same file as
an input or as another output (the same path after resolving ``..`` and symlinks, or the same
inode, e.g. a hard link) would destroy the other one: ``modified_onnx_file`` equal to the config
silently overwrote the user's config. :func:`check_roles` raises one OutputError naming every
such pair, and each entry point calls it first, before any export or write. Inputs may share a
path (reading a file twice destroys nothing; the parser then names what is wrong).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from qdqforge.errors import OutputError

PathArg = str | os.PathLike | None


def check_roles(
    call: str,
    *,
    inputs: Mapping[str, PathArg] | None = None,
    outputs: Mapping[str, PathArg] | None = None,
) -> None:
    """Refuse any output that is the same file as an input or another output.

    Args:
        call: the public function, as the message names it.
        inputs: role -> path the call reads (None: not given).
        outputs: role -> path the call writes (None: not written).

    Raises:
        OutputError: names the call, both roles and the path.
    """
    seen: dict[object, tuple[str, bool]] = {}
    clashes = []
    for role, path, is_output in _roles(inputs or {}, outputs or {}):
        key = _identity(path)
        if key in seen and (is_output or seen[key][1]):
            clashes.append(f"{role} is the same file as {seen[key][0]} ({os.fspath(path)!r})")
        seen.setdefault(key, (role, is_output))
    if clashes:
        raise OutputError(
            f"{call}: " + "; ".join(clashes) + ": one path cannot play two roles (an output "
            "would overwrite it); give each a different file"
        )


def _roles(inputs: Mapping[str, PathArg], outputs: Mapping[str, PathArg]):
    for roles, is_output in ((inputs, False), (outputs, True)):
        for role, path in roles.items():
            if path is not None and isinstance(path, (str, os.PathLike)) and os.fspath(path):
                yield role, path, is_output


def _identity(path: str | os.PathLike) -> object:
    """(device, inode) of an existing file, else the absolute path with links resolved."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return os.path.realpath(path)
    return (info.st_dev, info.st_ino)
