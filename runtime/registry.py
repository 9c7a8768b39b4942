"""Converter registry: ONNX (domain, op_type, since_version) -> a named converter function.

A converter turns one ONNX node into torch.fx nodes through an :class:`Emitter`::

    @converter("Relu", versions=(6, 13, 14))
    def convert_relu(node: OnnxNode, emit: Emitter):
        return emit.call(torch.relu, emit.value(0))

It returns the value of the single output, or a sequence (one entry per ONNX output, None for
outputs nobody reads). A value is an fx node (a runtime tensor), a numpy array (a constant folded at
build time) or a :class:`Sym` (an int64 shape vector whose entries are ints or fx nodes that yield
Python ints at run time, so dynamic batch dims stay dynamic).

Pattern converters (:func:`pattern_converter`) claim several nodes at once (``MatMul(x,
Transpose(W)) + b`` -> ``F.linear``, ``Q -> DQ`` -> one fake-quant); they are tried before the
single-node converters, on the node that produces the pattern's output.

Lookup resolves the model's opset to the op's ``since_version`` with
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
    # FLOAT attributes are float32: read them as the shortest decimal that rounds to them
    # (1e-5, 0.1), i.e. the value the torch module was built with, not 9.999999747e-06.
    if attr.type == onnx.AttributeProto.FLOAT:
        return float(str(np.float32(attr.f)))
    if attr.type == onnx.AttributeProto.FLOATS:
        return [float(str(np.float32(f))) for f in attr.floats]
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


@dataclass(frozen=True)
class Sym:
    """An int64 shape value known per entry: each item is an int or an fx node yielding an int.

    ``scalar`` marks a 0-d value (one item), e.g. ``Gather(Shape(x), 0)``.
    """

    items: tuple[Any, ...]
    scalar: bool = False


Value = Any  # torch.fx.Node | np.ndarray | Sym

# Inputs are named by position in the current node, or by ONNX value name (pattern converters).
Ref = int | str


class Emitter(Protocol):
    """What the builder offers a converter while it converts one node."""

    opset: int  # default-domain opset of the model
    node: OnnxNode  # the node (for patterns: the root node) being converted
    graph: GraphView | None  # the whole ONNX graph (None while folding constants)

    def has(self, ref: Ref) -> bool:
        """True when input ``ref`` is present (not absent, not the empty name "")."""

    def raw(self, ref: Ref) -> Value:
        """Input ``ref`` as held (fx node, numpy constant or Sym), for pass-through ops."""

    def value(self, ref: Ref) -> torch.fx.Node | None:
        """fx value of input ``ref``; None when the input is absent or empty ("")."""

    def const(self, ref: Ref) -> np.ndarray | None:
        """Value of input ``ref`` when it is a constant (never a parameter/persistent buffer)."""

    def ints(self, ref: Ref) -> list | None:
        """Input ``ref`` as a list of ints / int-valued fx nodes (constant or :class:`Sym`)."""

    def scalar(self, ref: Ref) -> Any:
        """A 0-d constant input as a Python number, else the fx value (cheap for ``x * 2``)."""

    def operand(self, ref: Ref, other: Ref) -> Any:
        """Binary-op operand: a Python number for a 1-element constant whose broadcast against
        ``other`` keeps ``other``'s shape, else the fx value."""

    def is_param(self, ref: Ref) -> bool:
        """True when input ``ref`` is a trainable initializer (a torch nn.Parameter)."""

    def shape(self, ref: Ref) -> tuple | None:
        """Static shape of input ``ref`` from shape inference (None entries for dynamic dims)."""

    def dtype(self, ref: Ref) -> int | None:
        """ONNX elem type (``onnx.TensorProto.FLOAT``...) of input ``ref``, if known."""

    def device(self) -> torch.fx.Node | None:
        """fx value of the device of the first graph input (for factory calls)."""

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` once per build for ``key`` (share one fx node between converters)."""

    def method(self, name: str, *args: Any, **kwargs: Any) -> torch.fx.Node:
        """Emit ``args[0].name(*args[1:], **kwargs)`` as a call_method node."""

    def call(self, fn: Callable, *args: Any, **kwargs: Any) -> torch.fx.Node:
        """Emit ``fn(*args, **kwargs)`` as a call_function node."""

    def module(self, module: torch.nn.Module, *args: Any, path: str | None = None) -> torch.fx.Node:
        """Register ``module`` (at ``path`` or a name derived from the node) and call it."""

    def getitem(self, value: torch.fx.Node, index: int) -> torch.fx.Node:
        """Emit ``value[index]`` (for multi-output calls)."""


Converter = Callable[[OnnxNode, Emitter], "Value | Sequence[Value | None]"]


class GraphView(Protocol):
    """Read-only queries a pattern matcher may ask about the whole ONNX graph."""

    def producer(self, value: str) -> OnnxNode | None:
        """Node that outputs ``value`` (None for inputs and initializers)."""

    def consumers(self, value: str) -> list[OnnxNode]:
        """Nodes that read ``value`` (graph outputs are not nodes: see ``is_output``)."""

    def is_output(self, value: str) -> bool:
        """True when ``value`` is a graph output."""

    def is_param(self, value: str) -> bool:
        """True when ``value`` is an initializer that becomes an nn.Parameter."""

    def initializer(self, value: str) -> np.ndarray | None:
        """Initializer (or Constant-node) value of ``value``, whatever its role."""


Matcher = Callable[[OnnxNode, GraphView], "tuple[OnnxNode, ...] | None"]
PatternConverter = Callable[["tuple[OnnxNode, ...]", Emitter], "Value | Sequence[Value | None]"]


@dataclass(frozen=True)
class Pattern:
    """A multi-node converter: ``match(root)`` returns every node it claims (root last)."""

    name: str
    root: str
    match: Matcher
    convert: PatternConverter
    priority: int = 0


_CONVERTERS: dict[OpKey, Converter] = {}
_PATTERNS: list[Pattern] = []


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


def pattern_converter(name: str, *, root: str, match: Matcher, priority: int = 0) -> Callable:
    """Register the decorated ``convert(nodes, emit)`` for nodes ``match`` claims at ``root``."""

    def register(fn: PatternConverter) -> PatternConverter:
        if any(p.name == name for p in _PATTERNS):
            raise QdqforgeError(f"pattern converter {name!r} registered twice")
        _PATTERNS.append(Pattern(name, root, match, fn, priority))
        _PATTERNS.sort(key=lambda p: -p.priority)
        return fn

    return register


def patterns(root: str) -> list[Pattern]:
    """Pattern converters rooted at op ``root``, highest priority first."""
    _load_builtin_converters()
    return [p for p in _PATTERNS if p.root == root]


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
