"""Check that an exported graph computes what ``model.eval()`` computes, in onnxruntime.

The graph is exported from a copy in training mode (to keep Dropout nodes) and then given
inference semantics. That equals ``model.eval()`` unless a module branches on ``self.training``
in other ways (auxiliary heads, stochastic depth, random ops); this check catches those.
The error is relative to the output's magnitude: ``max|onnx - torch| / max|torch|``.

Memory: onnxruntime gets every held initializer (a view of the model's tensor:
:mod:`~qdqforge.front.export.cache_weights`) and every other one of
:data:`~qdqforge.graph.detached.MIN_BYTES` or more as a fed input
(``numerics.run_with_weights``), read in place: a held one from its array, another from the
export copy's own parameter or buffer when its bytes are the initializer's (compared one tensor
at a time), else from the initializer's data. Fed, not constant, a weight is not prepacked
(a copy). A session built from the serialized proto held its bytes, their
parse and its own tensors: +3x the weights while it ran, and a proto over protobuf's 2 GB limit
could not be serialized at all, so the check was skipped there.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from qdqforge.front.export.train_branches import EvalResult
from qdqforge.graph import detached, numerics
from qdqforge.graph.held_arrays import array_of, is_held

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # relative; exporter round-off is ~1e-7, semantic differences are ~1


def eval_error(
    proto: onnx.ModelProto,
    work: nn.Module,
    args: tuple[torch.Tensor, ...],
    reference: EvalResult | None = None,
) -> float:
    """Relative max error of onnxruntime vs ``work.eval()`` on ``args``; NaN if ORT cannot run.

    ``work`` must be export's own copy: it is switched to eval mode here. ``reference``:
    ``model.eval()``'s result when the training-mode check computed it already.
    """
    try:
        feeds = numerics.feeds_for(proto, [a.detach().cpu().numpy() for a in args])
        got = numerics.run_with_weights(proto, feeds, weight_feeds(proto, work))
    except Exception as e:  # e.g. custom ops ORT lacks: nothing to compare against
        log.warning("cannot run the exported graph in onnxruntime to verify it: %s", e)
        return float("nan")
    work.eval()
    want = _leaves((reference or EvalResult(args)).of(work))
    if len(got) != len(want):
        return float("inf")
    return max((_relative(g, w) for g, w in zip(got, want)), default=0.0)


def weight_feeds(proto: onnx.ModelProto, work: nn.Module) -> dict[str, np.ndarray]:
    """``{name: array}`` of ``proto``'s large initializers (module docstring)."""
    named = _named_arrays(work.named_parameters(remove_duplicate=False))
    named.update(_named_arrays(work.named_buffers(remove_duplicate=False)))
    feeds = {}
    for tensor in proto.graph.initializer:
        if is_held(tensor):  # the model's own tensor, held beside the proto
            feeds[tensor.name] = array_of(tensor)
        elif tensor.ByteSize() >= detached.MIN_BYTES and not tensor.external_data:
            feeds[tensor.name] = _same_or_copy(tensor, named.get(tensor.name))
    return feeds


def _named_arrays(named) -> dict[str, np.ndarray]:
    arrays = {}
    for name, value in named:
        if value is not None and value.device.type == "cpu" and value.is_contiguous():
            try:
                arrays[name] = value.detach().numpy()
            except (TypeError, RuntimeError):  # bfloat16 and other types numpy lacks
                continue
    return arrays


def _same_or_copy(tensor: onnx.TensorProto, array: np.ndarray | None) -> np.ndarray:
    """``array`` itself when it holds ``tensor``'s bytes, else ``tensor``'s data (a copy)."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    fits = array is not None and array.dtype == dtype and array.shape == tuple(tensor.dims)
    raw = fits and tensor.HasField("raw_data") and sys.byteorder == "little"
    if raw and _same_bytes(array, tensor.raw_data):  # one tensor's transient copy
        return array
    return numpy_helper.to_array(tensor)


def _same_bytes(array: np.ndarray, data: bytes, chunk: int = 2**24) -> bool:
    mine, theirs = array.reshape(-1).view(np.uint8), np.frombuffer(data, np.uint8)
    if mine.size != theirs.size:
        return False
    steps = range(0, mine.size, chunk)
    return all(np.array_equal(mine[i : i + chunk], theirs[i : i + chunk]) for i in steps)


def _leaves(result: object) -> list[np.ndarray]:
    leaves = torch.utils._pytree.tree_leaves(result)
    return [leaf.detach().cpu().numpy() for leaf in leaves if isinstance(leaf, torch.Tensor)]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    got, want = got.astype(np.float64), want.astype(np.float64)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    return float(np.abs(got - want).max(initial=0.0)) / scale
