"""The two torch exporters, called the one way qdqforge needs them.

- dynamo (``torch.export`` based): ``optimize=False`` is required. Its optimizer folds BN into
  conv weights while keeping the old initializer names (``conv1.weight`` then holds fused values)
  and renames pre-transposed Linear weights; without it every initializer keeps its torch name
  and Linear on 3-D input stays ``Transpose(weight) -> MatMul``. Minimum opset 18.
- TorchScript (legacy tracer): ``do_constant_folding=False`` for the same naming reasons and
  ``training=PRESERVE`` so the module modes set by the caller (BN eval, Dropout train) are
  exported as they are. A trace that baked one branch of data-dependent control flow into the
  graph is refused instead of exported silently (:mod:`qdqforge.front.export.failures`).
"""

from __future__ import annotations

import io
import logging

import onnx
import torch
from torch import nn

from qdqforge.front.export.failures import check_trace
from qdqforge.front.export.parameter_stubs import serialize_without_parameters
from qdqforge.front.export.quiet import quiet_exporter
from qdqforge.front.export.torchlib_registry import reused_registry
from qdqforge.gc_pause import gc_paused

log = logging.getLogger(__name__)

DYNAMO_MIN_OPSET = 18
TORCHSCRIPT_DEFAULT_OPSET = 17


def io_names(prefix: str, count: int) -> list[str]:
    """``["input"]`` for one tensor, ``["input_0", "input_1", ...]`` for several."""
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def export_dynamo(
    model: nn.Module, args: tuple[torch.Tensor, ...], *, opset: int | None, dynamic_batch: bool
) -> onnx.ModelProto:
    """Export with ``torch.onnx.export(dynamo=True, optimize=False)``; outputs keep fx names."""
    with gc_paused(), quiet_exporter(), reused_registry():  # the registry's imports too
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            optimize=False,
            external_data=False,
            verbose=False,
            report=False,
            opset_version=opset,
            input_names=io_names("input", len(args)),
            dynamic_shapes=_dynamic_shapes(args) if dynamic_batch else None,
        )
        return serialize_without_parameters(program.model, model)  # stubs: views of them later


def _dynamic_shapes(args: tuple[torch.Tensor, ...]) -> tuple[dict | None, ...]:
    return tuple(name and {0: torch.export.Dim(name)} for name in batch_dims(args))


def batch_dims(args: tuple[torch.Tensor, ...]) -> list[str | None]:
    """Name of each input's dynamic dim 0: ``batch`` when it equals the first input's, else
    ``batch_<i>``; ``None`` for 0-d inputs."""
    first = args[0].shape[0] if args[0].dim() else None
    names: list[str | None] = []
    for i, arg in enumerate(args):
        if not arg.dim():
            names.append(None)
            continue
        names.append("batch" if arg.shape[0] == first else f"batch_{i}")
    return names


def export_torchscript(
    model: nn.Module,
    args: tuple[torch.Tensor, ...],
    *,
    opset: int | None,
    dynamic_batch: bool,
    strict: bool = False,
) -> onnx.ModelProto:
    """Export with the TorchScript tracer (``do_constant_folding=False``, modes preserved).

    ``strict``: refuse any value-to-bool conversion outside torch (see :mod:`.failures`).
    """
    inputs, ranks = io_names("input", len(args)), _output_ranks(model, args)
    outputs = io_names("output", len(ranks))
    axes = {name: {0: dim} for name, dim in zip(inputs, batch_dims(args)) if dim}
    axes.update({name: {0: "batch"} for name, rank in zip(outputs, ranks) if rank})
    buffer = io.BytesIO()
    with gc_paused(), quiet_exporter() as caught:
        torch.onnx.export(
            model,
            args,
            buffer,
            dynamo=False,
            do_constant_folding=False,
            opset_version=opset or TORCHSCRIPT_DEFAULT_OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes if dynamic_batch else None,
            verbose=False,
        )
    check_trace(caught, model, strict)
    return onnx.load_from_string(buffer.getvalue())


def _output_ranks(model: nn.Module, args: tuple[torch.Tensor, ...]) -> list[int]:
    """Rank of each tensor ``model(*args)`` returns (the tracer flattens nested outputs)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        result = model(*args)
    leaves = torch.utils._pytree.tree_leaves(result)
    return [leaf.dim() for leaf in leaves if isinstance(leaf, torch.Tensor)]
