"""The walk behind :mod:`qdqforge.front.export.fingerprint`: a SHA-256 over everything reachable.

:class:`Walker` feeds a tagged, length-prefixed token stream into one ``hashlib.sha256``:

* scalars (``None``, bool, int, float, complex, str, bytes) by exact type and ``repr``; enums,
  dtypes, devices, ``torch.Size`` by their class and name;
* containers item by item (sets order-free); tensors and numpy arrays by dtype, shape, device
  type, ``requires_grad``, Parameter or not, and their bytes;
* objects (``nn.Module`` included) by their class and every instance attribute, ``__dict__``
  and ``__slots__`` alike; a module's ``_parameters``, ``_buffers``, ``_modules``, hooks and
  ``training`` are instance attributes like any other;
* classes by every entry of every class in their MRO: functions by their code (``marshal``
  version 2, without back-references: bytecode, constants, names) and, outside installed
  libraries, their defaults, closure cells, attributes and the module globals their code names
  (library code is taken as fixed: its functions count by name and code only); plain class
  data as values, other class attributes by type;
* an object met again (shared submodules, tied weights, cycles) as a back-reference to the
  first visit, so which tensors are the same object is part of the fingerprint.

Objects whose state cannot be read (C types without ``__dict__``) raise :class:`UncacheableError`
naming the attribute path, unless they cannot shape a graph (locks, loggers, RNGs), which are
taken by type. So are walks over ``budget`` objects or too deep to recurse.
"""

from __future__ import annotations

import enum
import hashlib
import struct

from qdqforge.front.export.fingerprint_kinds import (
    DISPATCH,
    MISSING,
    NAMED,
    OPAQUE,
    SCALARS,
    UncacheableError,
    qualname,
    slot_names,
)


class Walker:
    """One fingerprint; call :meth:`value` on each root, then :meth:`digest`."""

    def __init__(self, budget: int = 1_000_000) -> None:
        self._hash = hashlib.sha256()
        self._memo: dict[int, int] = {}
        self._alive: list[object] = []  # keeps visited objects alive: ids stay unique
        self._path: list[str] = []
        self._budget = budget

    def digest(self) -> bytes:
        return self._hash.digest()

    def put(self, tag: bytes, payload: bytes = b"") -> None:
        self._hash.update(tag + struct.pack("<Q", len(payload)))
        self._hash.update(payload)

    def text(self, tag: bytes, value: str) -> None:
        self.put(tag, value.encode("utf-8", "surrogatepass"))

    def refuse(self, what: str) -> UncacheableError:
        return UncacheableError(f"{'.'.join(self._path) or '<root>'}: {what}")

    def value(self, obj: object) -> None:
        """Add ``obj`` (and all it reaches) to the fingerprint."""
        kind = type(obj)
        if obj is MISSING:  # an unset slot or an empty closure cell
            self.put(b"0")
            return
        if kind in SCALARS:
            self.text(b"S", f"{kind.__name__}:{obj!r}")
            return
        if isinstance(obj, (*NAMED, enum.Enum)):
            self.text(b"N", f"{kind.__module__}.{kind.__qualname__}:{obj!r}")
            return
        index = self._memo.get(id(obj))
        if index is not None:
            self.put(b"R", struct.pack("<Q", index))
            return
        self._budget -= 1
        if self._budget < 0:
            raise self.refuse("more objects than the fingerprint budget")
        self._memo[id(obj)] = len(self._memo)
        self._alive.append(obj)
        try:
            self._dispatch(obj)
        except RecursionError as e:
            raise self.refuse("nested too deeply to fingerprint") from e

    def _dispatch(self, obj: object) -> None:
        for kinds, method in DISPATCH:
            if isinstance(obj, kinds):
                method(self, obj)
                return
        if isinstance(obj, OPAQUE):
            self.text(b"O", qualname(type(obj)))
            return
        self.instance(obj)

    def named(self, name: str, obj: object) -> None:
        self._path.append(name)
        self.value(obj)
        self._path.pop()

    def instance(self, obj: object) -> None:
        """Class plus every ``__dict__`` and ``__slots__`` attribute."""
        kind = type(obj)
        state = getattr(obj, "__dict__", None)
        slots = slot_names(kind)
        if state is None and not slots:
            raise self.refuse(f"a {qualname(kind)} has no readable state")
        self.put(b"I")
        self.value(kind)
        if isinstance(obj, (dict, list, tuple)):  # a subclass with attributes: items too
            self.items(obj)
        for name, item in (state or {}).items():
            self.text(b"K", name)
            self.named(name, item)
        for name in slots:
            self.text(b"L", name)
            self.named(name, getattr(obj, name, MISSING))

    def items(self, obj) -> None:
        if isinstance(obj, dict):
            self.put(b"D", struct.pack("<Q", len(obj)))
            for key, item in obj.items():
                self.value(key)
                self.named(str(key), item)
            return
        self.put(b"T", struct.pack("<Q", len(obj)))
        for position, item in enumerate(obj):
            self.named(str(position), item)
