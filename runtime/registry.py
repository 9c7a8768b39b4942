"""Converter registry: ONNX (domain, op_type, since_version) -> a named converter function.

A converter turns one ONNX node into torch.fx nodes through an :class:`Emitter`::

    @converter("Relu", versions=(6, 13, 14))
    def convert_relu(node: OnnxNode, emit: Emitter):
        return emit.call(torch.relu, emit.value(0))

It returns the fx node for the single output, or a sequence (one entry per ONNX output, None for
outputs nobody reads). Lookup resolves the model's opset to the op's ``since_version`` with
``onnx.defs.get_schema(..., max_inclusive_version=opset)``; for custom domains the largest
registered version <= the domain's opset wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import onnx
import torch
import torch.fx

from qdqforge.errors import QdqforgeError


class OpKey(NamedTuple):
    domain: str
    op_type: str
    since_version: int


@dataclass(frozen=True)
class OnnxNode:
    """Read-only view of one ONNX node, attributes decoded to Python values."""

    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    @classmethod
    def from_proto(cls, node: onnx.NodeProto) -> OnnxNode:
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        meta = {p.key: p.value for p in node.metadata_props}
        return cls(
            node.name,
            node.op_type,
            node.domain or "",
            tuple(node.input),
            tuple(node.output),
            attrs,
            meta,
        )


def _attr_value(attr: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


class Emitter(Protocol):
    """What the builder offers a converter while it converts one node."""

    opset: int  # default-domain opset of the model

    def value(self, index: int) -> torch.fx.Node | None:
        """fx value of input ``index``; None when the input is absent or empty ("")."""

    def const(self, index: int) -> np.ndarray | None:
        """Value of input ``index`` when it is an initializer or Constant output, else None."""

    def is_param(self, index: int) -> bool:
        """True when input ``index`` is a trainable initializer (a torch nn.Parameter)."""

    def shape(self, index: int) -> tuple | None:
        """Static shape of input ``index`` from shape inference (None entries for dynamic dims)."""

    def call(self, fn: Callable, *args: Any, **kwargs: Any) -> torch.fx.Node:
        """Emit ``fn(*args, **kwargs)`` as a call_function node."""

    def module(self, module: torch.nn.Module, *args: Any, path: str | None = None) -> torch.fx.Node:
        """Register ``module`` (at ``path`` or a name derived from the node) and call it."""

    def getitem(self, value: torch.fx.Node, index: int) -> torch.fx.Node:
        """Emit ``value[index]`` (for multi-output calls)."""


Converter = Callable[[OnnxNode, Emitter], "torch.fx.Node | Sequence[torch.fx.Node | None]"]

_CONVERTERS: dict[OpKey, Converter] = {}


def converter(op_type: str, *, versions: Iterable[int], domain: str = "") -> Callable:
    """Register the decorated function for ``op_type`` at each since_version in ``versions``."""

    def register(fn: Converter) -> Converter:
        for version in versions:
            key = OpKey(domain, op_type, version)
            if key in _CONVERTERS:
                raise QdqforgeError(f"converter for {key} registered twice")
            _CONVERTERS[key] = fn
        return fn

    return register


def resolve(op_type: str, domain: str, opset: int) -> Converter | None:
    """Converter for ``op_type`` under ``opset`` of ``domain``, or None when unsupported."""
    _load_builtin_converters()
    domain = "" if domain == "ai.onnx" else domain
    if domain == "":
        try:
            schema = onnx.defs.get_schema(op_type, max_inclusive_version=opset, domain="")
        except Exception:  # unknown to onnx itself
            return None
        return _CONVERTERS.get(OpKey("", op_type, schema.since_version))
    versions = [k.since_version for k in _CONVERTERS if k.domain == domain and k.op_type == op_type]
    usable = [v for v in versions if v <= max(opset, 1)]
    return _CONVERTERS[OpKey(domain, op_type, max(usable))] if usable else None


def registered() -> list[OpKey]:
    """Every registered key, sorted."""
    _load_builtin_converters()
    return sorted(_CONVERTERS)


def _load_builtin_converters() -> None:
    # Importing the package registers every converter (explicit list in converters/__init__.py).
    import qdqforge.runtime.converters  # noqa: F401
