"""The files a save writes, by role, for :func:`qdqforge.graph.path_roles.check_roles`."""

from __future__ import annotations

import os
from pathlib import Path

from qdqforge.front.save.verify import verify_path
from qdqforge.front.save.write_models import output_path


def save_outputs(save_path: str | os.PathLike | None, prefix: str = "save_path") -> dict[str, Path]:
    """The files a save with ``save_path`` writes, by role (``save_path -> fake_quant``, ...)."""
    if save_path is None:
        return {}
    return {
        f"{prefix} fake-quant model": output_path(save_path, "fake_quant"),
        f"{prefix} deploy model": output_path(save_path, "deploy"),
        f"{prefix} verify report": verify_path(save_path),
    }
