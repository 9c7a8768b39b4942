"""The example ``input_data`` of ``quantize_model``, kept beside the modified ONNX.

AMCT's ``save_model(modfied_onnx_file, record_file, save_path)`` has no ``input_data``, yet the
save-time check (:mod:`qdqforge.front.save.verify`) needs inputs to run the three models on. So
``quantize_model`` writes ``<modified>.inputs.npz`` (``arr_0``, ``arr_1``, ... in positional
order, written atomically) and ``save_model`` reads it back.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from qdqforge.graph.io import atomic_write_bytes


def inputs_path(onnx_file: str | os.PathLike) -> Path:
    """``<modified>.inputs.npz`` for the modified ONNX file ``onnx_file``."""
    return Path(f"{os.fspath(onnx_file)}.inputs.npz")


def as_arrays(inputs) -> tuple[np.ndarray, ...]:
    """A tensor, a tuple of tensors or of arrays, as a tuple of numpy arrays (on the CPU)."""
    items = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(
        item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        for item in items
    )


def save_example_inputs(onnx_file: str | os.PathLike, inputs) -> Path:
    """Write ``inputs`` to ``<onnx_file>.inputs.npz`` atomically; returns the path."""
    buffer = io.BytesIO()
    np.savez(buffer, *as_arrays(inputs))
    target = inputs_path(onnx_file)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def load_example_inputs(onnx_file: str | os.PathLike) -> tuple[np.ndarray, ...] | None:
    """The inputs ``quantize_model`` stored for ``onnx_file``, or None when there are none."""
    path = inputs_path(onnx_file)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        return tuple(stored[f"arr_{i}"] for i in range(len(stored.files)))
