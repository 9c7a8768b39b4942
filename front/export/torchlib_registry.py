"""dynamo's ONNX op registry, built once per process and opset instead of once per export.

``torch.onnx.export(dynamo=True)`` calls ``ONNXRegistry.from_torchlib(opset)`` on every export:
it compiles onnxscript's ~500 torchlib functions (~1.5 s here, a fixed cost per export). Inside
:func:`reused_registry` that classmethod returns a copy of a registry built once for that opset:
the same functions in the same order (a fresh dict of fresh lists, so an export that registers
custom ops cannot change the kept one). The patch is installed only for the duration of the
block, under :data:`qdqforge.front.export.to_onnx.EXPORT_LOCK`, and removed afterwards. If torch's
internals are not where this expects them, exports build the registry as before.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

_BUILT: dict[int, object] = {}
_LOCK = threading.Lock()


def _registration():
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return None
    cls = getattr(_registration, "ONNXRegistry", None)
    original = getattr(cls, "__dict__", {}).get("from_torchlib")
    return (cls, original) if isinstance(original, classmethod) else None


@contextlib.contextmanager
def reused_registry() -> Iterator[None]:
    """Within this block, dynamo exports reuse one registry per opset (see module docstring)."""
    found = _registration()
    if found is None:
        yield
        return
    cls, original = found
    build = original.__func__
    default = (build.__defaults__ or (None,))[0]

    def from_torchlib(klass, *args, **kwargs):
        opset = kwargs.get("opset_version", args[0] if args else default)
        if klass is not cls or len(args) + len(kwargs) > 1 or not isinstance(opset, int):
            return build(klass, *args, **kwargs)
        with _LOCK:
            if opset not in _BUILT:
                _BUILT[opset] = build(klass, opset_version=opset)
                log.debug("built the torchlib registry for opset %d", opset)
            return _fresh(_BUILT[opset])

    cls.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        cls.from_torchlib = original


def _fresh(registry):
    """A copy whose function table can be changed without touching ``registry``."""
    twin = copy.copy(registry)
    twin.functions = {target: list(metas) for target, metas in registry.functions.items()}
    return twin
