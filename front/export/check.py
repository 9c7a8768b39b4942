"""Check that an exported graph computes what ``model.eval()`` computes, in onnxruntime.

The graph is exported from a copy in training mode (to keep Dropout nodes) and then given
inference semantics. That equals ``model.eval()`` unless a module branches on ``self.training``
in other ways (auxiliary heads, stochastic depth, random ops); this check catches those.
The error is relative to the output's magnitude: ``max|onnx - torch| / max|torch|``.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import torch
from torch import nn

from qdqforge.graph import numerics

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # relative; exporter round-off is ~1e-7, semantic differences are ~1


def eval_error(proto: onnx.ModelProto, work: nn.Module, args: tuple[torch.Tensor, ...]) -> float:
    """Relative max error of onnxruntime vs ``work.eval()`` on ``args``; NaN if ORT cannot run.

    ``work`` must be export's own copy: it is switched to eval mode here.
    """
    try:
        feeds = numerics.feeds_for(proto, [a.detach().cpu().numpy() for a in args])
        got = numerics.run(proto, feeds)
    except Exception as e:  # e.g. custom ops ORT lacks: nothing to compare against
        log.warning("cannot run the exported graph in onnxruntime to verify it: %s", e)
        return float("nan")
    with torch.no_grad():
        want = _leaves(work.eval()(*args))
    if len(got) != len(want):
        return float("inf")
    return max((_relative(g, w) for g, w in zip(got, want)), default=0.0)


def _leaves(result: object) -> list[np.ndarray]:
    leaves = torch.utils._pytree.tree_leaves(result)
    return [leaf.detach().cpu().numpy() for leaf in leaves if isinstance(leaf, torch.Tensor)]


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    got, want = got.astype(np.float64), want.astype(np.float64)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    return float(np.abs(got - want).max(initial=0.0)) / scale
