"""How :class:`qdqforge.front.export.fingerprint_walk.Walker` reads each kind of object.

One handler per kind (tensors, arrays, functions and their globals, classes, containers, ...),
chosen through :data:`DISPATCH` in order; the rules are in the walk module's docstring. Also
here: what counts as library code (:func:`is_library`) and the types taken by type alone.
"""

from __future__ import annotations

import enum
import functools
import io
import logging
import marshal
import os
import re
import sys
import sysconfig
import threading
import types
import weakref
from collections import OrderedDict, defaultdict, deque

import numpy as np
import torch

SCALARS = (type(None), bool, int, float, complex, str, bytes)
NAMED = (torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size)
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_LIBRARY_DIRS = tuple(
    os.path.join(os.path.realpath(path), "")
    for name in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(name))
)
# Cannot shape an exported graph; identified by type only.
OPAQUE = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Event,
    threading.Thread,
    logging.Logger,
    logging.Handler,
    torch.Generator,
    io.IOBase,
    re.Pattern,
)
# __slotnames__: copyreg caches it on a class when an instance is first copied (export does)
_SKIPPED_CLASS_KEYS = frozenset(
    ("__dict__", "__weakref__", "__doc__", "__module__", "__slotnames__")
)


class UncacheableError(Exception):
    """The model holds state the fingerprint cannot read; ``str(e)`` names where."""


@functools.lru_cache(maxsize=4096)
def is_library(module_name: str | None) -> bool:
    """True for code of installed packages and the standard library (site-packages, stdlib)
    and for built-in modules; False for the user's own code (and unknown modules)."""
    module = sys.modules.get(module_name or "")
    if module is None:
        return False
    path = getattr(module, "__file__", None)
    if path is None:
        return module_name in sys.builtin_module_names
    return os.path.realpath(path).startswith(_LIBRARY_DIRS)


MISSING = object()


def slot_names(kind: type) -> list[str]:
    """Attribute names of every ``__slots__`` entry in ``kind``'s MRO (private ones mangled)."""
    names = []
    for cls in kind.__mro__:
        slots = getattr(cls, "__slots__", ())
        for slot in [slots] if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            private = slot.startswith("__") and not slot.endswith("__")
            names.append(f"_{cls.__name__.lstrip('_')}{slot}" if private else slot)
    return names


def qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _exact_container(walker, obj) -> None:
    walker.text(b"C", type(obj).__name__)
    if isinstance(obj, defaultdict):
        walker.value(obj.default_factory)
    walker.items(obj)


def _container(walker, obj) -> None:
    if type(obj) in (dict, OrderedDict, defaultdict, list, tuple):
        _exact_container(walker, obj)
        return
    if isinstance(obj, (deque, types.MappingProxyType)):
        _exact_container(walker, list(obj) if isinstance(obj, deque) else dict(obj))
        return
    walker.instance(obj)  # namedtuples, dict subclasses: class, items and attributes


def _set(walker, obj) -> None:
    walker.text(b"E", type(obj).__name__)
    if all(type(item) in SCALARS for item in obj):
        for item in sorted(obj, key=lambda v: (type(v).__name__, repr(v))):
            walker.value(item)
        return
    digests = []
    for item in obj:  # order-free: each member on its own walker
        sub = type(walker)()
        sub.value(item)
        digests.append(sub.digest())
    for digest in sorted(digests):
        walker.put(b"e", digest)


def _tensor(walker, tensor: torch.Tensor) -> None:
    if type(tensor) not in _TENSOR_TYPES:
        raise walker.refuse(f"a tensor subclass {qualname(type(tensor))}")
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_meta:
        raise walker.refuse(f"a {tensor.layout} / quantized / meta tensor")
    head = (tensor.dtype, tuple(tensor.shape), tensor.device.type, tensor.requires_grad)
    walker.text(b"X", f"{type(tensor).__name__}:{head}")
    walker.put(b"x", tensor_bytes(tensor))


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's values as bytes (a CPU contiguous view; a copy only when needed)."""
    flat = tensor.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _array(walker, array: np.ndarray) -> None:
    if array.dtype.hasobject:
        raise walker.refuse("a numpy array of Python objects")
    walker.text(b"A", f"{array.dtype.str}:{array.shape}")
    walker.put(b"a", np.ascontiguousarray(array).tobytes())


def _numpy_scalar(walker, obj: np.generic) -> None:
    walker.text(b"G", f"{obj.dtype.str}:{obj!r}")


def _function(walker, fn: types.FunctionType) -> None:
    walker.text(b"F", f"{fn.__module__}.{fn.__qualname__}")
    # version 2: no back-references, which marshal 3+ writes for objects referenced more than
    # once at the time, so the bytes moved with other code's references to the same constants
    # (a profiler's: a cache miss and a second export under cProfile)
    walker.put(b"f", marshal.dumps(fn.__code__, 2))
    if is_library(fn.__module__):  # library code is taken as fixed: its code names it
        return
    walker.named("__defaults__", fn.__defaults__)
    walker.named("__kwdefaults__", fn.__kwdefaults__)
    cells = [_cell(cell) for cell in fn.__closure__ or ()]
    walker.named("__closure__", cells)
    walker.named("__dict__", dict(vars(fn)))
    _globals(walker, fn)


def _cell(cell) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return MISSING


def _globals(walker, fn: types.FunctionType) -> None:
    names, codes = set(), [fn.__code__]
    while codes:  # names used by nested functions and comprehensions too
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    scope = fn.__globals__
    for name in sorted(n for n in names if n in scope):
        walker.text(b"g", name)
        walker.named(name, scope[name])


def _module(walker, module: types.ModuleType) -> None:
    walker.text(b"M", module.__name__)


def _method(walker, method: types.MethodType) -> None:
    walker.put(b"m")
    walker.value(method.__func__)
    walker.named("__self__", method.__self__)


def _builtin(walker, fn) -> None:
    owner = getattr(fn, "__self__", None)
    module = getattr(fn, "__module__", None) or type(owner).__name__
    walker.text(b"B", f"{module}.{getattr(fn, '__qualname__', repr(fn))}")
    if owner is not None and not isinstance(owner, (types.ModuleType, type)):
        walker.named("__self__", owner)


def _descriptor(walker, obj) -> None:
    walker.text(b"P", type(obj).__name__)
    for name in ("__func__", "fget", "fset", "fdel"):
        if hasattr(obj, name):
            walker.named(name, getattr(obj, name))


def _partial(walker, obj: functools.partial) -> None:
    walker.put(b"p")
    walker.value(obj.func)
    walker.value(obj.args)
    walker.value(obj.keywords)


def _weakref(walker, ref: weakref.ref) -> None:
    walker.put(b"W")
    walker.named("<referent>", ref())


def _class(walker, kind: type) -> None:
    walker.text(b"Y", qualname(kind))
    for base in kind.__mro__[:-1]:  # object's own entries never change
        walker.text(b"y", qualname(base))
        for name, item in list(vars(base).items()):
            if name in _SKIPPED_CLASS_KEYS:
                continue
            walker.text(b"k", name)
            if _is_code_or_data(item):
                walker.named(name, item)
            else:  # other class attributes: by type (e.g. a class-level logger or registry)
                walker.text(b"t", qualname(type(item)))


def _is_code_or_data(item: object) -> bool:
    if isinstance(item, (type, types.FunctionType, classmethod, staticmethod, property)):
        return True
    if type(item) in SCALARS or isinstance(item, (*NAMED, enum.Enum)):
        return True
    if type(item) in (tuple, list, frozenset, set, dict):
        values = item.values() if isinstance(item, dict) else item
        return all(_is_code_or_data(v) for v in values)
    return False


DISPATCH = (
    (torch.Tensor, _tensor),
    (np.ndarray, _array),
    (np.generic, _numpy_scalar),
    (type, _class),
    (types.FunctionType, _function),
    (types.MethodType, _method),
    ((types.BuiltinFunctionType, types.BuiltinMethodType), _builtin),
    ((types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType), _builtin),
    ((types.ClassMethodDescriptorType, types.GetSetDescriptorType), _builtin),
    (types.MemberDescriptorType, _builtin),
    ((classmethod, staticmethod, property), _descriptor),
    (functools.partial, _partial),
    (types.ModuleType, _module),
    (weakref.ref, _weakref),
    ((dict, list, tuple, deque, types.MappingProxyType), _container),
    ((set, frozenset), _set),
)
