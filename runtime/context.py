"""Build context: the fx graph being written, the value environment and the parameter store.

Environment values are fx nodes (run-time tensors), numpy arrays (build-time constants) or
:class:`~qdqforge.runtime.registry.Sym` shape values. Initializers with a ``param``/``buffer``
role are read through one ``get_attr`` node each; ``const`` ones stay numpy until a converter
needs them as a tensor, then they become non-persistent buffers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import onnx
import torch
import torch.fx
from onnx import numpy_helper
from torch import nn

from qdqforge.errors import ConversionError
from qdqforge.graph.tensor_budget import FOLD_ELEMENTS, node_output_elements
from qdqforge.runtime.emitter import EagerEmitter, FxEmitter, to_array
from qdqforge.runtime.modules.namespace import Namespace
from qdqforge.runtime.plan import Step
from qdqforge.runtime.registry import OnnxNode, Sym
from qdqforge.runtime.store import ParameterStore, Role, reading_tensor, shared_tensor

logger = logging.getLogger(__name__)

OPS = "onnx_ops"  # container of the stateless op modules (Dropout, BatchNorm ops, ...)
NO_FOLD = frozenset(
    {"Dropout", "BatchNormalization", "RandomNormal", "RandomUniform", "RandomNormalLike"}
    | {"RandomUniformLike", "Multinomial", "Bernoulli", "QuantizeLinear", "DequantizeLinear"}
    # a folded value is one array; a sequence (a list) is never folded
    | {"SplitToSequence", "SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase"}
)


class BuildContext:
    """Everything the emitters share while one graph is built."""

    def __init__(
        self,
        model: onnx.ModelProto,
        roles: dict[str, Role],
        opset: int,
        index: Any = None,
        detached: dict[str, np.ndarray] | None = None,
        read_only: bool = False,
    ) -> None:
        self.index = index  # GraphView of the ONNX graph, for converters that look around
        self.memo: dict[Any, Any] = {}
        self.graph = torch.fx.Graph()
        self.root = Namespace()
        self.store = ParameterStore(self.root)
        self.opset = opset
        self.roles = roles
        self.inits = {i.name: i for i in model.graph.initializer}
        self.detached = detached or {}  # graph.detached: arrays the proto holds placeholders of
        self.read_only = read_only  # the module is only read: read-only arrays are shared too
        self.env: dict[str, Any] = {}
        self.shapes: dict[str, tuple | None] = {}
        self.dtypes: dict[str, int] = {}
        self._attrs: dict[str, torch.fx.Node] = {}
        self._device: torch.fx.Node | None = None
        self._first_input: torch.fx.Node | None = None
        self._module_names: set[str] = set()
        self._unproduced: dict[str, OnnxNode] = {}

    # -- values ---------------------------------------------------------------------------
    def defined(self, name: str) -> bool:
        return name in self.env or name in self.inits or name in self.store.mapping

    def lookup(self, name: str, node: OnnxNode) -> Any:
        if name in self.env:
            return self.env[name]
        if name in self.store.mapping or name in self.inits:
            return self._init_value(name)
        if name in self._unproduced:
            maker = self._unproduced[name]
            raise ConversionError(
                f"{node.op_type} node {node.name!r} reads {name!r}, an output of "
                f"{maker.op_type} node {maker.name!r} that the runtime does not produce"
            )
        raise ConversionError(f"{node.op_type} node {node.name!r}: input {name!r} is not defined")

    def _init_value(self, name: str) -> Any:
        if name in self._attrs:
            return self._attrs[name]
        if name not in self.store.mapping:
            array = self.initializer_array(name)
            if self.roles.get(name, Role.CONST) is Role.CONST:
                self.env[name] = array
                return array
            self.store.add(name, self.tensor_of(name, array), self.roles[name])
        node = self.graph.get_attr(self.store.mapping[name])
        self._attrs[name] = node
        return node

    def is_param(self, name: str) -> bool:
        return self.roles.get(name) is Role.PARAM

    def initializer_array(self, name: str) -> np.ndarray:
        """Initializer ``name``'s value: the detached array itself, or a copy from the proto."""
        if name in self.detached:
            return self.detached[name]
        return numpy_helper.to_array(self.inits[name])

    def tensor_of(self, name: str, array: np.ndarray) -> torch.Tensor | np.ndarray:
        """A detached array as a torch tensor sharing its memory (a read-only one only for a
        module that is only read); others as they are (the store copies them)."""
        if name not in self.detached:
            return array
        if self.read_only and not array.flags.writeable and _shareable(array):
            return reading_tensor(array)
        return shared_tensor(array)

    def const_node(self, name: str, array: np.ndarray) -> torch.fx.Node:
        """A constant needed as a tensor: one non-persistent buffer per ONNX value name."""
        if name not in self._attrs:
            self.store.add(name, array, Role.CONST)
            self._attrs[name] = self.graph.get_attr(self.store.mapping[name])
        return self._attrs[name]

    def register(self, name: str, tensor: torch.Tensor, role: Role) -> None:
        """Register a tensor that is not an initializer (e.g. ``num_batches_tracked``)."""
        self.store.add(name, tensor, role)
        self.roles[name] = role

    # -- graph ----------------------------------------------------------------------------
    def placeholder(self, name: str) -> torch.fx.Node:
        node = self.graph.placeholder(_identifier(name))
        self._first_input = self._first_input or node
        self.env[name] = node
        return node

    def device_node(self) -> torch.fx.Node | None:
        if self._device is None and self._first_input is not None:
            self._device = self.graph.call_function(getattr, (self._first_input, "device"))
        return self._device

    def add_module(self, module: nn.Module, path: str | None, node: OnnxNode) -> str:
        if path is None:
            base = _identifier(node.meta.get("qdqforge.module") or node.name or node.op_type)
            name, n = base, 0
            while name in self._module_names:
                n += 1
                name = f"{base}_{n}"
            self._module_names.add(name)
            path = f"{OPS}.{name}"
            if OPS not in self.root._modules:
                self.root.add_module(OPS, Namespace())
            self.root._modules[OPS].add_module(name, module)
        else:  # a dotted path ("conv1.act_quant") hangs under the layer's namespace
            owner, leaf = self.store.owner(path)
            if hasattr(owner, leaf):
                raise ConversionError(f"{node.op_type} node {node.name!r}: {path!r} is taken")
            owner.add_module(leaf, module)
        return path

    # -- steps ----------------------------------------------------------------------------
    def run(self, step: Step) -> None:
        root = step.root
        try:
            result = self._fold(step)
            if result is None:
                result = step.fn(step.nodes if step.pattern else root, FxEmitter(self, root))
        except ConversionError:
            raise
        except Exception as e:
            what = f"pattern {step.pattern!r} at " if step.pattern else ""
            raise ConversionError(f"{what}{root.op_type} node {root.name!r}: {e}") from e
        self._bind(root, result)

    def _fold(self, step: Step) -> list | None:
        node = step.root
        if step.pattern or node.op_type in NO_FOLD or node.domain:
            return None
        names = [n for n in node.inputs if n]
        if not all(isinstance(self._peek(n), np.ndarray) for n in names):
            return None
        arrays = {n: self._peek(n) for n in names}
        if not self._small_enough(node, arrays):
            return None
        try:
            result = step.fn(node, EagerEmitter(node, self.opset, arrays))
            values = result if isinstance(result, (list, tuple)) else [result]
            folded = [None if v is None else to_array(v, node) for v in values]
        except Exception as e:  # not foldable here: emit it as run-time ops
            logger.debug("not folding %s %r: %s", node.op_type, node.name, e)
            return None
        return folded

    def _small_enough(self, node: OnnxNode, arrays: dict[str, np.ndarray]) -> bool:
        """Shape inference says every output holds at most FOLD_ELEMENTS (checked before
        folding: a ConstantOfShape of [2^31] becomes a run-time op, never a build-time array)."""
        try:
            sizes = node_output_elements(_node_proto(node), arrays, self.opset)
        except (TypeError, ValueError) as e:  # an attribute make_node cannot encode back
            sizes = [None]
            logger.debug("no size for %s %r: %s", node.op_type, node.name, e)
        if all(size is not None and size <= FOLD_ELEMENTS for size in sizes):
            return True
        logger.debug("not folding %s %r: output elements %s", node.op_type, node.name, sizes)
        return False

    def _peek(self, name: str) -> Any:
        if name in self.env:
            return self.env[name]
        if name in self.inits and self.roles.get(name, Role.CONST) is Role.CONST:
            return self._init_value(name)
        return None

    def _bind(self, node: OnnxNode, result: Any) -> None:
        values = list(result) if isinstance(result, (list, tuple)) else [result]
        values += [None] * (len(node.outputs) - len(values))
        for name, value in zip(node.outputs, values):
            if isinstance(value, Sym) and all(isinstance(i, int) for i in value.items):
                value = np.array(value.items[0] if value.scalar else value.items, dtype=np.int64)
            if name and value is not None:
                self.env[name] = value
            elif name:
                self._unproduced[name] = node


def _node_proto(node: OnnxNode) -> onnx.NodeProto:
    """The node back as a NodeProto for shape inference (an empty list attribute has no type
    left to encode; inference reads none of those, so it is left out)."""
    attrs = {
        key: onnx.numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value
        for key, value in node.attrs.items()
        if not (isinstance(value, (list, tuple)) and not value)
    }
    return onnx.helper.make_node(
        node.op_type, node.inputs, node.outputs, name=node.name, domain=node.domain, **attrs
    )


def _identifier(name: str) -> str:
    text = re.sub(r"\W", "_", name).strip("_") or "value"
    return f"v_{text}" if text[0].isdigit() else text


def _shareable(array: np.ndarray) -> bool:
    return array.flags.c_contiguous and array.dtype.kind in "biuf"
