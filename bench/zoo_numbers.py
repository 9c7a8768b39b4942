"""Output comparisons for the zoo: tensors of any model output structure, and saved ONNX models run
in onnxruntime with graph optimizations off (``ORT_DISABLE_ALL``: the reference arithmetic)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch

from qdqforge.graph import numerics


def leaves(output) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (tensor, tuple, dict, ModelOutput), in order."""
    found = torch.utils._pytree.tree_leaves(output)
    if not found and hasattr(output, "to_tuple"):  # transformers' ModelOutput
        found = torch.utils._pytree.tree_leaves(output.to_tuple())
    return [t for t in found if isinstance(t, torch.Tensor) and t.is_floating_point()]


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |got - expected| / max |expected|`` (in float64)."""
    got, expected = got.detach().double(), expected.detach().double()
    if got.shape != expected.shape:
        return float("inf")
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


def ort_rel_l2(path: str | os.PathLike, inputs: tuple, reference: torch.Tensor) -> float:
    """Relative L2 error of the saved model's first output vs ``reference`` (ORT_DISABLE_ALL)."""
    proto = onnx.load(os.fspath(path))
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy() for x in inputs]))[0]
    expected = reference.detach().double().numpy()
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-12))
