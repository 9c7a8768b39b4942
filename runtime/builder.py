"""``reimport``: ONNX model -> trainable ``torch.fx.GraphModule``.

Steps: (a) plan: toposort, claim patterns, resolve every node, raise one UnsupportedOpsError;
(b) parameter store: parameters and persistent buffers registered under their torch names;
(c) emit fx nodes in topological order through the converters; (d) wrap as a GraphModule that
keeps every registered tensor (also across ``copy.deepcopy``) and carries ``onnx_mapping``.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.fx

from qdqforge.errors import ConversionError, GraphError
from qdqforge.gc_pause import gc_paused
from qdqforge.graph import meta
from qdqforge.graph.io import load_proto
from qdqforge.graph.shapes import infer_types
from qdqforge.graph.tensor_budget import check_shapes
from qdqforge.runtime.context import BuildContext
from qdqforge.runtime.modules.namespace import FastChildren, remirror
from qdqforge.runtime.plan import PlanView, decide_roles, make_plan, opsets, toposort
from qdqforge.runtime.registry import OnnxNode, Sym
from qdqforge.runtime.store import Role

logger = logging.getLogger(__name__)

_KEEP = ("_modules", "_parameters", "_buffers", "_non_persistent_buffers_set", "onnx_mapping")


class ReimportedModule(FastChildren, torch.fx.GraphModule):
    """GraphModule that keeps unreferenced tensors and ``onnx_mapping`` through deepcopy.

    Attributes:
        onnx_mapping: ONNX initializer name -> torch attribute path (the state_dict key for
            parameters and persistent buffers; constants are non-persistent buffers), plus
            tensors the runtime adds such as ``<bn>.num_batches_tracked``.
    """

    onnx_mapping: dict[str, str]

    def __deepcopy__(self, memo: dict[int, Any]) -> ReimportedModule:
        res = super().__deepcopy__(memo)
        state = copy.deepcopy(self.__dict__, memo)  # memoized: the same copies the graph uses
        for key in _KEEP:
            if key in state:
                res.__dict__[key] = state[key]
        remirror(res)
        return res


def reimport(
    model: onnx.ModelProto | str | Path,
    *,
    tensors: dict[str, np.ndarray] | None = None,
    read_only: bool = False,
) -> ReimportedModule:
    """Convert an ONNX model into a trainable torch.fx GraphModule.

    Args:
        model: a ModelProto or the path of an ``.onnx`` file.
        tensors: the arrays of initializers ``model`` holds as placeholders
            (:func:`qdqforge.graph.detached.to_proto_detached`); the module's parameters and
            buffers share their memory.
        read_only: the module will only be read (an eval-only reference, never trained or
            loaded into): read-only arrays among ``tensors`` (a map of external data,
            :mod:`qdqforge.graph.mapped`) are shared too, not copied. Writing into one faults.

    Returns:
        The module; its ``forward`` takes the graph inputs in order and returns one tensor or a
        tuple. ``module.onnx_mapping`` maps initializer names to torch attribute paths.

    Raises:
        UnsupportedOpsError: some ops have no converter (all of them are listed).
        ConversionError: a supported op has attributes or inputs the converter cannot handle.
        GraphError: the graph has a cycle, ``model`` is not a readable ONNX file, or a tensor
            it computes has a static shape over the one-tensor limit (``graph.tensor_budget``).
    """
    with gc_paused():
        return _reimport(model, tensors or {}, read_only)


def _load(path) -> onnx.ModelProto:
    if not isinstance(path, (str, os.PathLike)):
        raise GraphError(
            f"reimport needs an onnx.ModelProto or the path of an .onnx file, got "
            f"{type(path).__name__}"
        )
    return load_proto(path)


def _reimport(
    model: onnx.ModelProto | str | Path, tensors: dict, read_only: bool
) -> ReimportedModule:
    start = time.perf_counter()
    proto = model if isinstance(model, onnx.ModelProto) else _load(model)
    nodes = toposort(proto)
    roles = decide_roles(proto, nodes)
    versions = opsets(proto)
    index = PlanView(proto, nodes, roles, tensors)
    steps = make_plan(nodes, index, versions)
    ctx = BuildContext(proto, roles, versions.get("", 1), index, tensors, read_only)
    ctx.shapes, ctx.dtypes = infer_types(proto)
    check_shapes(ctx.shapes, ctx.dtypes, nodes, "reimport")
    _register_state(ctx, proto, nodes)
    for value in proto.graph.input:
        if value.name not in ctx.inits:
            ctx.placeholder(value.name)
    for step in steps:
        ctx.run(step)
    _emit_outputs(ctx, proto)
    module = _assemble(ctx)
    logger.info(
        "reimported %d nodes into %d fx nodes in %.2f s",
        len(nodes),
        len(ctx.graph.nodes),
        time.perf_counter() - start,
    )
    return module


def _register_state(ctx: BuildContext, proto: onnx.ModelProto, nodes: list[OnnxNode]) -> None:
    """Parameters and persistent buffers first, in file order, so they keep their torch names;
    a tied weight's other names right after the name they follow in the original state_dict."""
    aliases = {}
    for alias, target, after in meta.load_aliases(meta.model_value(proto, meta.ALIASES)):
        aliases.setdefault(after, []).append((alias, target))
    frozen = set(meta.load_names(meta.model_value(proto, meta.FROZEN)))
    for init in proto.graph.initializer:
        role = ctx.roles.get(init.name, Role.CONST)
        if role is not Role.CONST:
            array = ctx.initializer_array(init.name)
            path = ctx.store.add(init.name, ctx.tensor_of(init.name, array), role)
            owner, leaf = ctx.store.owner(path)
            if init.name in frozen and leaf in owner._parameters:  # requires_grad=False there
                owner._parameters[leaf].requires_grad_(False)
            _register_aliases(ctx, aliases, init.name)
    for node in nodes:
        if node.op_type == "BatchNormalization" and len(node.inputs) > 3:
            mean = node.inputs[3]
            if mean.endswith("running_mean") and mean in ctx.store.mapping:
                counter = mean[: -len("running_mean")] + "num_batches_tracked"
                if not ctx.defined(counter):
                    ctx.register(counter, torch.tensor(0, dtype=torch.long), Role.BUFFER)


def _register_aliases(ctx: BuildContext, aliases: dict, after: str) -> None:
    for alias, target in aliases.pop(after, []):
        if ctx.store.alias(alias, target) is not None:
            _register_aliases(ctx, aliases, alias)


def _emit_outputs(ctx: BuildContext, proto: onnx.ModelProto) -> None:
    outputs = []
    for value in proto.graph.output:
        if not ctx.defined(value.name):
            raise ConversionError(f"graph output {value.name!r} is never produced")
        raw = ctx.lookup(value.name, OnnxNode("output", "Output", "", (), ()))
        if isinstance(raw, np.ndarray):
            raw = ctx.const_node(value.name, raw)
        elif isinstance(raw, Sym):
            items = raw.items[0] if raw.scalar else list(raw.items)
            raw = ctx.graph.call_function(torch.tensor, (items,), {"dtype": torch.int64})
        outputs.append(raw)
    ctx.graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))


def _assemble(ctx: BuildContext) -> ReimportedModule:
    module = ReimportedModule(ctx.root, ctx.graph, class_name="ReimportedModule")
    if module.graph.eliminate_dead_code():
        module.recompile()
    # GraphModule copies only what the graph references; adopt everything, in store order.
    for name in [*module._modules, *module._parameters, *module._buffers]:
        delattr(module, name)
    for name, child in ctx.root._modules.items():
        module.add_module(name, child)
    for name, param in ctx.root._parameters.items():
        module.register_parameter(name, param)
    for name, buf in ctx.root._buffers.items():
        persistent = name not in ctx.root._non_persistent_buffers_set
        module.register_buffer(name, buf, persistent=persistent)
    # initializers (and tensors we added, e.g. num_batches_tracked); not folded constants
    module.onnx_mapping = {
        name: path
        for name, path in ctx.store.mapping.items()
        if name in ctx.inits or ctx.roles.get(name) in (Role.PARAM, Role.BUFFER)
    }
    return module
