"""The first samples of a batch, along the axis a model says is its batch axis.

The save-time check compares deterministic models (eval mode, fixed weights and grids) and
proves what it proves on any sample: a wrong scale, offset, weight, bias or kernel moves most
values of its layer whatever the input, and kernels that saturate do so on every sample with
large products. Its cost grows with the samples it runs, so it runs on the first few samples of
the user's example batch (``CHECK_SAMPLES``), two rather than one so that a batch of distinct
samples passes through every layer (an axis mix-up between batch and channels or tokens cannot
hide behind a batch of one). The export's checks do not cut: they look for what a model does in
training mode, stochastic depth among it, which a random draw on two samples misses more often
than on the whole batch (timm's DropPath at p = 0.1 keeps all of 2 samples 81 % of the time).

Only the batch axis is cut, and only where the ONNX model says it is one: dim 0 of every graph
input whose dim 0 is the symbolic dimension of the first input (``batch``: qdqforge's exporter
makes it symbolic unless the model fixes it); other inputs are passed whole. Callers whose
models cannot run fewer samples than they were exported with run the whole batch instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

CHECK_SAMPLES = 2  # what the checks run by default (module docstring)


@dataclass(frozen=True)
class Samples:
    """The arrays to run and how many of how many samples they hold; ``batched`` marks the
    positional inputs that were cut."""

    arrays: tuple[np.ndarray, ...]
    used: int | None
    given: int | None
    batched: tuple[bool, ...] = ()

    @property
    def cut(self) -> bool:
        return self.used != self.given

    def apply(self, items: Sequence) -> tuple:
        """``items`` (e.g. the torch tensors ``arrays`` came from) cut the same way."""
        head = tuple(x[: self.used] if b else x for x, b in zip(items, self.batched))
        return head + tuple(items[len(head) :])


def first_samples(
    model: onnx.ModelProto, arrays: tuple[np.ndarray, ...], samples: int | None
) -> Samples:
    """The first ``samples`` samples of ``arrays`` along ``model``'s batch axis (module doc).

    ``samples=None``, a model without a symbolic batch axis or a batch of at most ``samples``
    give ``arrays`` unchanged (``used`` = ``given`` = dim 0 of the first input, if any).
    """
    batched = batch_inputs(model, len(arrays))
    given = next((a.shape[0] for a, b in zip(arrays, batched) if b and a.ndim), None)
    if samples is None or given is None or given <= samples:
        first = given or next((a.shape[0] for a in arrays if a.ndim), None)
        return Samples(arrays, first, first)
    cut = tuple(bool(b and a.ndim and a.shape[0] == given) for a, b in zip(arrays, batched))
    return Samples(tuple(a[:samples] if c else a for a, c in zip(arrays, cut)), samples, given, cut)


def batch_inputs(model: onnx.ModelProto, count: int) -> list[bool]:
    """Per positional input: True where its dim 0 is the first input's symbolic dimension."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers][:count]
    firsts = [_dim0(i) for i in inputs]
    batch = firsts[0] if firsts else None
    return [bool(batch) and first == batch for first in firsts] + [False] * (count - len(firsts))


def _dim0(value: onnx.ValueInfoProto) -> str | None:
    shape = value.type.tensor_type.shape
    if not value.type.HasField("tensor_type") or not shape.dim:
        return None
    return shape.dim[0].dim_param or None
