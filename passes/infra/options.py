"""Per-pass options: a small frozen dataclass given to the pass's constructor.

``run_pipeline``, ``rewrite`` and the CLI take options as plain dicts keyed by pass name (the
registry name); :func:`options_for_pass` turns one dict into the pass's ``options_type``.
``None`` gives the defaults; an instance of ``options_type`` passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from qdqforge.errors import PassError


@dataclass(frozen=True)
class NoOptions:
    """Options of a pass that takes none."""


def options_for_pass(pass_name: str, options_type: type, given: Any) -> Any:
    """``given`` (None, a dict or an ``options_type``) as an ``options_type`` instance.

    Raises:
        PassError: ``given`` is neither, or names a key ``options_type`` does not have (the
            message names the pass, the key and the valid keys).
    """
    if given is None:
        return options_type()
    if isinstance(given, options_type):
        return given
    if not isinstance(given, Mapping):
        raise PassError(
            f"pass {pass_name!r}: options must be a dict or {options_type.__name__}, "
            f"got {type(given).__name__}"
        )
    known = [f.name for f in fields(options_type)]
    unknown = sorted(str(key) for key in given if key not in known)
    if unknown:
        raise PassError(
            f"pass {pass_name!r}: unknown option {unknown[0]!r}; "
            f"known options: {', '.join(known) or 'none'}"
        )
    return options_type(**given)
