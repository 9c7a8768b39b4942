"""Emitters: what a converter talks to. One writes torch.fx nodes, one folds constants eagerly.

The same converter code serves both: :class:`FxEmitter` records ``emit.call(F.relu, x)`` as an fx
node; :class:`EagerEmitter` runs it on tensors when every input of the node is a build-time
constant, so pure-constant subexpressions never reach the graph.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
import torch.fx

from qdqforge.errors import ConversionError
from qdqforge.runtime.registry import OnnxNode, Ref, Sym

if TYPE_CHECKING:
    from qdqforge.runtime.context import BuildContext


class _RefEmitter:
    """Shared input-reference resolution (an int is a position, a str an ONNX value name)."""

    def __init__(self, node: OnnxNode, opset: int) -> None:
        self.node = node
        self.opset = opset

    def _name(self, ref: Ref) -> str:
        if isinstance(ref, str):
            return ref
        return self.node.inputs[ref] if ref < len(self.node.inputs) else ""

    def ints(self, ref: Ref) -> list | None:
        raw = self._raw(ref)
        if isinstance(raw, np.ndarray):
            return [int(v) for v in raw.reshape(-1)]
        return list(raw.items) if isinstance(raw, Sym) else None

    def const(self, ref: Ref) -> np.ndarray | None:
        raw = self._raw(ref)
        return raw if isinstance(raw, np.ndarray) else None

    def scalar(self, ref: Ref) -> Any:
        raw = self._raw(ref)
        if isinstance(raw, np.ndarray) and raw.ndim == 0:
            return raw.item()
        return self.value(ref)

    def raw(self, ref: Ref) -> Any:
        """The input as it is held: fx node, numpy constant or Sym (for pass-through ops)."""
        return self._raw(ref)

    def _raw(self, ref: Ref) -> Any:
        raise NotImplementedError

    def value(self, ref: Ref) -> Any:
        raise NotImplementedError


class FxEmitter(_RefEmitter):
    """Emits fx nodes into ``ctx.graph`` for one ONNX node (or one pattern, by its root)."""

    def __init__(self, ctx: BuildContext, node: OnnxNode) -> None:
        super().__init__(node, ctx.opset)
        self.ctx = ctx
        self.graph = ctx.index

    def memo(self, key: Any, make: Any) -> Any:
        """``make()`` once per build for ``key``; later calls return the first result."""
        if key not in self.ctx.memo:
            self.ctx.memo[key] = make()
        return self.ctx.memo[key]

    def has(self, ref: Ref) -> bool:
        name = self._name(ref)
        return bool(name) and self.ctx.defined(name)

    def _raw(self, ref: Ref) -> Any:
        name = self._name(ref)
        return self.ctx.lookup(name, self.node) if name else None

    def value(self, ref: Ref) -> torch.fx.Node | None:
        name = self._name(ref)
        raw = self._raw(ref)
        if isinstance(raw, np.ndarray):
            return self.ctx.const_node(name, raw)
        if isinstance(raw, Sym):
            items = raw.items[0] if raw.scalar else list(raw.items)
            return self.call(torch.tensor, items, dtype=torch.int64, device=self.device())
        return raw

    def operand(self, ref: Ref, other: Ref) -> Any:
        """Like :meth:`scalar`, also baking a 1-element constant when broadcasting against
        ``other`` cannot change the result shape (``x * c[1]`` with x of rank >= 1)."""
        const = self.const(ref)
        if const is not None and const.size == 1 and const.dtype.kind in "fiu":
            rank = self.shape(other)
            if const.ndim == 0 or (rank is not None and len(rank) >= const.ndim):
                return const.reshape(()).item()
        return self.value(ref)

    def is_param(self, ref: Ref) -> bool:
        return self.ctx.is_param(self._name(ref))

    def shape(self, ref: Ref) -> tuple | None:
        raw = self._raw(ref)
        if isinstance(raw, np.ndarray):
            return raw.shape
        if isinstance(raw, Sym):
            return () if raw.scalar else (len(raw.items),)
        return self.ctx.shapes.get(self._name(ref))

    def dtype(self, ref: Ref) -> int | None:
        raw = self._raw(ref)
        if isinstance(raw, np.ndarray):
            return onnx.helper.np_dtype_to_tensor_dtype(raw.dtype)
        if isinstance(raw, Sym):
            return onnx.TensorProto.INT64
        return self.ctx.dtypes.get(self._name(ref))

    def device(self) -> torch.fx.Node | None:
        return self.ctx.device_node()

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> torch.fx.Node:
        return self.ctx.graph.call_function(fn, args, kwargs)

    def method(self, name: str, *args: Any, **kwargs: Any) -> torch.fx.Node:
        return self.ctx.graph.call_method(name, args, kwargs)

    def module(self, module: torch.nn.Module, *args: Any, path: str | None = None) -> Any:
        target = self.ctx.add_module(module, path, self.node)
        return self.ctx.graph.call_module(target, args)

    def getitem(self, value: torch.fx.Node, index: int) -> torch.fx.Node:
        return self.call(operator.getitem, value, index)


class EagerEmitter(_RefEmitter):
    """Runs a converter on constant numpy inputs; the results are folded constants."""

    def __init__(self, node: OnnxNode, opset: int, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(node, opset)
        self.arrays = arrays
        self.graph = None

    def memo(self, key: Any, make: Any) -> Any:
        return make()

    def has(self, ref: Ref) -> bool:
        return self._name(ref) in self.arrays

    def _raw(self, ref: Ref) -> Any:
        return self.arrays.get(self._name(ref))

    def value(self, ref: Ref) -> torch.Tensor | None:
        raw = self._raw(ref)
        return None if raw is None else torch.from_numpy(np.array(raw, copy=True))

    def scalar(self, ref: Ref) -> Any:
        # Keep numpy/torch dtypes while folding: Python scalars would widen to float64/int64.
        return self.value(ref)

    def operand(self, ref: Ref, other: Ref) -> Any:
        return self.value(ref)

    def is_param(self, ref: Ref) -> bool:
        return False

    def shape(self, ref: Ref) -> tuple | None:
        raw = self._raw(ref)
        return None if raw is None else raw.shape

    def dtype(self, ref: Ref) -> int | None:
        raw = self._raw(ref)
        return None if raw is None else onnx.helper.np_dtype_to_tensor_dtype(raw.dtype)

    def device(self) -> None:
        return None

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(args[0], name)(*args[1:], **kwargs)

    def module(self, module: torch.nn.Module, *args: Any, path: str | None = None) -> Any:
        return module(*args)

    def getitem(self, value: Any, index: int) -> Any:
        return value[index]


def to_array(value: Any, node: OnnxNode) -> np.ndarray:
    """A folded result as a numpy array."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (int, float, bool)):
        return np.array(value)
    raise ConversionError(f"{node.op_type} node {node.name!r}: cannot fold {type(value).__name__}")
