"""Dataclass <-> plain JSON data, driven by type hints (used by :class:`GraphDiff`).

JSON has no NaN or infinity, and a graph diff meets both (a NaN weight, a tensor whose error is
unbounded); they travel as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, which
``float()`` reads back. Tuples become lists and come back as tuples.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

from qdqforge.errors import GraphError


def to_plain(obj: Any) -> Any:
    """Recursively turn dataclasses, tuples and dicts into JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


def from_plain(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_plain` output.

    Raises:
        GraphError: ``value`` does not have the shape ``tp`` asks for.
    """
    try:
        return _build(tp, value)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise GraphError(f"cannot read {getattr(tp, '__name__', tp)} from JSON: {e}") from e


def _build(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _build_union(typing.get_args(tp), value)
    if origin is tuple:
        return _build_tuple(typing.get_args(tp), value)
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        return {_build(key_tp, k): _build(value_tp, v) for k, v in value.items()}
    if origin is list:
        return [_build(typing.get_args(tp)[0], v) for v in value]
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value)
    if tp is float:
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise TypeError(f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build_union(args: tuple, value: Any) -> Any:
    if value is None and type(None) in args:
        return None
    real = [a for a in args if a is not type(None)]
    return _build(real[0], value)


def _build_tuple(args: tuple, value: Any) -> tuple:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_build(args[0], v) for v in value)
    return tuple(_build(a, v) for a, v in zip(args, value, strict=True))


def _build_dataclass(cls: type, value: dict) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(value) - names
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{k: _build(hints[k], v) for k, v in value.items()})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
