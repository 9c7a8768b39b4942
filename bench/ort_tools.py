"""onnxruntime helpers: run an ONNX file over batches, and ORT's own ``quantize_static`` baseline.

Two sessions, named by what they are:

* ``"disabled"``: ``graph_optimization_level = ORT_DISABLE_ALL``: a QDQ model's
  QuantizeLinear/DequantizeLinear run as float ops, the quantization *simulation*;
* ``"default"``: ``ort.InferenceSession(path)`` with no options, what users run: ORT_ENABLE_ALL,
  where ORT fuses a QDQ model's DQ->Conv/MatMul->Q into QLinearConv/QGemm/QLinearMatMul integer
  kernels, which on this AVX2-without-VNNI CPU sum u8 x s8 pairs into int16 with saturation (see
  bench/README.md). qdqforge's fake-quant model holds no Q/DQ, so nothing of it is fused.

The baseline is onnxruntime out of the box with the settings users reach for first: FP32 export
(``qdqforge.export``), ``quant_pre_process`` (shape inference, BN folding), then
``quantize_static`` in QDQ format with per-channel weights and MinMax calibration on the same
calibration batches as qdqforge.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import qdqforge

log = logging.getLogger(__name__)


def _as_arrays(x) -> list[np.ndarray]:
    return [t.numpy() for t in x] if isinstance(x, tuple) else [x.numpy()]


LEVELS = ("disabled", "default")
ort.set_default_logger_severity(3)  # the process-wide logger, not a session option


def session(model: Path | onnx.ModelProto, level: str = "default") -> ort.InferenceSession:
    """``"default"``: ``ort.InferenceSession(model)``, no options (it picks the CPU
    provider here); ``"disabled"``: the same with ``ORT_DISABLE_ALL``."""
    if level not in LEVELS:
        raise ValueError(f"session level {level!r}: expected one of {LEVELS}")
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    if level == "default":
        return ort.InferenceSession(source)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(source, options)


def run_onnx(model: Path | onnx.ModelProto, batches: list, level: str = "default") -> np.ndarray:
    """First output of ``model`` (a file or a proto) over ``batches``, concatenated on axis 0."""
    sess = session(model, level)
    names = [i.name for i in sess.get_inputs()]
    outs = [sess.run(None, dict(zip(names, _as_arrays(x))))[0] for x in batches]
    return np.concatenate(outs)


class _Reader:
    """``CalibrationDataReader`` protocol over a list of batches."""

    def __init__(self, names: list[str], batches: list) -> None:
        self._feeds = iter([dict(zip(names, _as_arrays(x))) for x in batches])

    def get_next(self):
        return next(self._feeds, None)


def ort_quantize_static(
    model, batches: list, workdir: Path, op_types: list[str] | None = None
) -> Path:
    """ORT's ``quantize_static`` (QDQ, per-channel, MinMax) calibrated on ``batches``.

    Args:
        model: float torch model in eval mode.
        batches: calibration inputs (tensors or tuples).
        workdir: folder for the FP32, pre-processed and quantized ONNX files.
        op_types: ``op_types_to_quantize`` (None = ORT's default, every op it can).

    Returns:
        Path of the quantized model.
    """
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    workdir.mkdir(parents=True, exist_ok=True)
    fp32, prep, out = workdir / "fp32.onnx", workdir / "prep.onnx", workdir / "ort_qdq.onnx"
    qdqforge.export(model, batches[0], str(fp32))
    quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=True)  # chokes on value_ints
    names = [i.name for i in session(prep).get_inputs()]
    quantize_static(
        str(prep),
        str(out),
        _Reader(names, batches),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        op_types_to_quantize=op_types,
    )
    return out
