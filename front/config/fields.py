"""Typed readers for raw JSON values; each bad value is recorded in an :class:`Issues` list.

A reader returns the value when it is valid and the given ``default`` otherwise, so validation
goes on and every violation of a file is reported at once. ``bool`` is never accepted as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

from qdqforge.front.config.issues import MISSING, Issues, join


def check_keys(
    obj: Mapping, path: str, allowed: Collection[str], issues: Issues, what: str = "key"
) -> None:
    """Record every key of ``obj`` that is not in ``allowed`` (with a did-you-mean)."""
    for key in obj:
        if key not in allowed:
            issues.unknown_key(path, key, allowed, what)


def get_object(obj: Mapping, key: str, path: str, issues: Issues) -> Mapping | None:
    """``obj[key]`` if it is a JSON object; ``None`` (and no issue) when absent."""
    value = obj.get(key, MISSING)
    if value is MISSING:
        return None
    if not isinstance(value, Mapping):
        issues.add(join(path, key), value, "a JSON object")
        return None
    return value


def get_bool(obj: Mapping, key: str, path: str, issues: Issues, default=MISSING):
    """A JSON boolean; missing is an issue unless ``default`` is given."""
    value = obj.get(key, default)
    if value is MISSING or not isinstance(value, bool):
        issues.add(join(path, key), value, "true or false")
        return default if default is not MISSING else False
    return value


def get_int(obj, key, path, issues, default, ok: Callable[[int], bool], allowed: str):
    """A JSON integer accepted by ``ok``."""
    value = obj.get(key, default)
    if value is MISSING or isinstance(value, bool) or not isinstance(value, int) or not ok(value):
        issues.add(join(path, key), value, allowed)
        return default if default not in (MISSING, None) else None
    return value


def get_float(obj, key, path, issues, default, ok: Callable[[float], bool], allowed: str):
    """A finite JSON number accepted by ``ok``, returned as written (int stays int)."""
    value = obj.get(key, default)
    if value is None and default is None:
        return None
    if not is_number(value) or not ok(value):
        issues.add(join(path, key), value, allowed)
        return default if default not in (MISSING, None) else None
    return value


def get_choice(obj, key, path, issues, default, choices: Collection):
    """A value from ``choices`` (compared exactly, so ``True`` is not ``1``)."""
    value = obj.get(key, default)
    if value is MISSING or not any(value == c and type(value) is type(c) for c in choices):
        issues.add(join(path, key), value, " | ".join(map(_show, choices)))
        return default if default is not MISSING else None
    return value


def get_str_list(obj: Mapping, key: str, path: str, issues: Issues) -> tuple[str, ...]:
    """A JSON list of distinct strings; absent means empty."""
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        issues.add(join(path, key), value, "a list of layer-name strings")
        return ()
    seen = set()
    for item in value:
        if item in seen:
            issues.add(join(path, key), item, "each layer listed once")
        seen.add(item)
    return tuple(value)


def is_number(value: object) -> bool:
    """True for finite ints and floats that are not bools."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _show(choice: object) -> str:
    if isinstance(choice, bool):
        return "true" if choice else "false"
    return f'"{choice}"' if isinstance(choice, str) else str(choice)
