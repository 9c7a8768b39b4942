"""Inputs for numeric checks: read an ``.npz`` or draw random arrays from the graph's inputs."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from qdqforge.errors import InputDataError
from qdqforge.graph.tensor_budget import check_array_shape

SYMBOLIC_DIM = 2  # symbolic or unknown dims (batch, sequence) become this size
T = onnx.TensorProto
RANDOM_TYPES = (T.BOOL, T.INT8, T.UINT8, T.INT16, T.UINT16, T.INT32, T.UINT32, T.INT64, T.UINT64)
RANDOM_TYPES += (T.FLOAT16, T.FLOAT, T.DOUBLE)


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (what a caller must feed)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """One random array per graph input, shaped and typed as the graph declares it.

    Raises:
        InputDataError: an input is not a bool/int/float tensor (STRING, a sequence, ...), has
            a negative dim, or would be over the one-tensor limit; the message names it.
    """
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
    what = f"random input {vi.name!r}"
    if not vi.type.HasField("tensor_type"):
        raise InputDataError(f"{what}: not a tensor ({vi.type.WhichOneof('value')}); use --inputs")
    tensor = vi.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else SYMBOLIC_DIM for d in tensor.shape.dim]
    dtype = _dtype(tensor.elem_type or onnx.TensorProto.FLOAT, what)
    check_array_shape(shape, dtype, what)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def _dtype(elem_type: int, what: str) -> np.dtype:
    if elem_type not in RANDOM_TYPES:
        covered = ", ".join(_type_name(t) for t in RANDOM_TYPES)
        raise InputDataError(
            f"{what}: cannot draw random values of ONNX type {_type_name(elem_type)} (random "
            f"inputs cover {covered}); give the inputs with --inputs"
        )
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def _type_name(elem_type: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return str(elem_type)
