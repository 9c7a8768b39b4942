"""Inputs for numeric checks: read an ``.npz`` or draw random arrays from the graph's inputs."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from qdqforge.errors import InputDataError

SYMBOLIC_DIM = 2  # symbolic or unknown dims (batch, sequence) become this size


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (what a caller must feed)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """One random array per graph input, shaped and typed as the graph declares it."""
    rng = np.random.default_rng(seed)
    return {vi.name: _random_array(vi, rng) for vi in graph_inputs(model)}


def load_feeds(path: str | os.PathLike, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Arrays from an ``.npz`` keyed by input name, or positional (``arr_0``, ...) otherwise.

    Raises:
        InputDataError: the file cannot be read or lacks an input the graph needs.
    """
    try:
        with np.load(os.fspath(path)) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:
        raise InputDataError(f"cannot read inputs {os.fspath(path)!r}: {e}") from e
    names = [vi.name for vi in graph_inputs(model)]
    if not set(names) <= set(arrays):
        positional = [arrays.get(f"arr_{i}") for i in range(len(names))]
        if any(a is None for a in positional):
            raise InputDataError(
                f"{os.fspath(path)!r} holds {sorted(arrays)}; the graph needs inputs {names} "
                "(by name, or positionally as arr_0, arr_1, ...)"
            )
        arrays = dict(zip(names, positional))
    return {n: arrays[n] for n in names}


def _random_array(vi: onnx.ValueInfoProto, rng: np.random.Generator) -> np.ndarray:
    tensor = vi.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else SYMBOLIC_DIM for d in tensor.shape.dim]
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type or onnx.TensorProto.FLOAT))
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)
