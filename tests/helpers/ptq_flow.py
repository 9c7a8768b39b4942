"""The PTQ seed flow the integration tests share: ``quantize_preprocess`` (one forward records
the DMQ factors), ``quantize_model``, then the calibration forwards."""

from __future__ import annotations

from pathlib import Path

import torch

import qdqforge


def as_args(batch) -> tuple:
    """A batch as the positional arguments of a forward (a tensor counts as ``(tensor,)``)."""
    return batch if isinstance(batch, tuple) else (batch,)


def run_seed_flow(cfg, record, onnx_file, model, batches, forwards=None, with_dmq=True):
    """Run the seed flow on ``batches`` and return the calibration module.

    Args:
        cfg: config file (JSON) for ``model``.
        record: record file to write.
        onnx_file: modified ONNX file ``quantize_model`` writes.
        model: the float model.
        batches: calibration batches (tensors or tuples); the first is also ``input_data``.
        forwards: how many of ``batches`` to calibrate on (all by default).
        with_dmq: run ``quantize_preprocess`` first (configs with DMQ layers need it).
    """
    example = batches[0]
    cfg, record, onnx_file = str(cfg), str(record), str(Path(onnx_file))
    with torch.no_grad():
        if with_dmq:
            qdqforge.quantize_preprocess(cfg, record, model, example)(*as_args(example))
        calib = qdqforge.quantize_model(cfg, onnx_file, record, model, example)
        for x in batches[:forwards]:
            calib(*as_args(x))
    return calib
