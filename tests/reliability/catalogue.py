"""The bad-input catalogue: one row per way a user can get an input wrong.

Each :class:`Case` names the wrong input (in words), the call that receives it, the error class
the user must get and a fragment of its message (the key path, layer, op or file to fix). The
rows live in the ``cases_*`` modules, one per kind of input; :data:`CASES` joins them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qdqforge.errors import QdqforgeError


@dataclass(frozen=True)
class Case:
    """One catalogue row.

    Attributes:
        id: short unique name (the pytest id).
        input: what is wrong, in words.
        call: ``call(world)`` makes the public call with the wrong input.
        error: the error class the user must get.
        match: a fragment of the message (case-sensitive substring).
    """

    id: str
    input: str
    call: Callable
    error: type[QdqforgeError]
    match: str


def all_cases() -> list[Case]:
    """Every row of every ``cases_*`` module (imported here: they import torch and qdqforge)."""
    from tests.reliability import (
        cases_config,
        cases_files,
        cases_inputs,
        cases_limits,
        cases_numerics,
        cases_qat,
        cases_record,
        cases_text,
        cases_untrusted,
    )

    modules = (
        cases_config,
        cases_text,
        cases_record,
        cases_inputs,
        cases_numerics,
        cases_files,
        cases_qat,
        cases_untrusted,
        cases_limits,
    )
    return [case for module in modules for case in module.CASES]
