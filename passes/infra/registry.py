"""Explicit registry of graph passes, keyed by ``GraphPass.name``."""

from __future__ import annotations

from qdqforge.errors import PassError
from qdqforge.passes.infra.base import GraphPass

_PASSES: dict[str, type[GraphPass]] = {}


def register_pass(cls: type[GraphPass]) -> type[GraphPass]:
    """Class decorator: make ``cls`` available by its ``name``."""
    if cls.name in _PASSES and _PASSES[cls.name] is not cls:
        raise PassError(f"pass name {cls.name!r} registered twice")
    _PASSES[cls.name] = cls
    return cls


def get_pass(name: str) -> type[GraphPass]:
    """Pass class registered as ``name``; PassError lists the known names otherwise."""
    _load_builtin_passes()
    try:
        return _PASSES[name]
    except KeyError as e:
        raise PassError(f"unknown pass {name!r}; known passes: {', '.join(sorted(_PASSES))}") from e


def all_passes() -> dict[str, type[GraphPass]]:
    """Every registered pass, by name."""
    _load_builtin_passes()
    return dict(sorted(_PASSES.items()))


def _load_builtin_passes() -> None:
    # Importing the package registers the built-in passes (explicit list in passes/__init__.py).
    import qdqforge.passes  # noqa: F401
