"""The quantization stages of ``make demo``: PTQ with DMQ and QAT, through the AMCT-style API.

Each stage returns report rows ``(stage, top-1, notes)`` and leaves its files in the demo folder:
config, record, modified ONNX, ``*_fake_quant_model.onnx`` and ``*_deploy_model.onnx``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from tqdm import tqdm

from qdqforge.demo_data import evaluate, fine_tune
from qdqforge.front.ptq.calibration import progress_disabled
from qdqforge.graph import numerics
from qdqforge.graph.io import atomic_write_text

DMQ_CFG = "batch_num: 4\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n"
CALIBRATION_BATCH = 64


def ort_accuracy(model: Path | onnx.ModelProto, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 of an ONNX model (or file) in a default session, as ``ort.InferenceSession(path)``
    runs it: every graph optimization, so QDQ groups run on onnxruntime's int8 kernels."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    feeds = numerics.feeds_for(proto, [x.numpy()])
    logits = numerics.default_session(proto).run(None, feeds)[0]
    return float((np.argmax(logits, 1) == y.numpy()).mean())


def ptq_stage(model, data, out: Path) -> tuple[list[tuple[str, str, str]], Path]:
    """create_quant_config -> quantize_preprocess -> quantize_model -> calibrate -> save_model."""
    import qdqforge as amct

    (x_tr, _), (x_te, y_te) = data
    sample, t0 = x_tr[:CALIBRATION_BATCH], time.perf_counter()
    atomic_write_text(out / "dmq.cfg", DMQ_CFG)
    cfg, record = str(out / "ptq_config.json"), str(out / "ptq_record.txt")
    amct.create_quant_config(cfg, model, sample, config_defination=str(out / "dmq.cfg"))
    batches = list(torch.split(x_tr[: 4 * CALIBRATION_BATCH], CALIBRATION_BATCH))
    with torch.no_grad():
        balance = amct.quantize_preprocess(cfg, record, model, sample)
        for batch in batches:
            balance(batch)
        calib = amct.quantize_model(cfg, str(out / "ptq_modified.onnx"), record, model, sample)
        for batch in batches:
            calib(batch)
    paths = amct.save_model(str(out / "ptq_modified.onnx"), record, str(out / "ptq"))
    took = f"calibrated on {len(batches)} x {CALIBRATION_BATCH} images in "
    took += f"{time.perf_counter() - t0:.1f} s"
    rows = [
        ("PTQ W8A8 + DMQ, torch calibration module", f"{evaluate(calib, x_te, y_te):.2%}", took),
        (
            "PTQ fake-quant ONNX, ORT",
            f"{ort_accuracy(paths.fake_quant, x_te, y_te):.2%}",
            "float ops: the calibration module's arithmetic in any runtime",
        ),
        (
            "PTQ deploy ONNX, ORT int8 kernels",
            f"{ort_accuracy(paths.deploy, x_te, y_te):.2%}",
            "ConvInteger/MatMulInteger, int32 bias",
        ),
        (
            "PTQ QDQ ONNX, ORT int8 kernels",
            f"{ort_accuracy(paths.qdq, x_te, y_te):.2%}",
            "QLinearConv/QGemm: without VNNI they may saturate (ptq_verify.json)",
        ),
    ]
    return rows, paths.fake_quant


def qat_stage(model, data, out: Path, epochs: int) -> list[tuple[str, str, str]]:
    """create_quant_retrain_config -> create_quant_retrain_model -> train -> save."""
    import qdqforge as amct

    if not hasattr(amct, "create_quant_retrain_model"):
        return [("QAT", "-", "not available in this build")]
    (x_tr, y_tr), (x_te, y_te) = data
    sample, t0 = x_tr[:CALIBRATION_BATCH], time.perf_counter()
    cfg, record = str(out / "qat_config.json"), str(out / "qat_record.txt")
    amct.create_quant_retrain_config(cfg, model, sample)
    qat = amct.create_quant_retrain_model(cfg, model, record, sample)
    bar = functools.partial(tqdm, desc="QAT", unit="epoch", disable=progress_disabled())
    fine_tune(qat, x_tr, y_tr, epochs=epochs, wrap=bar)
    took = f"{epochs} epoch(s) in {time.perf_counter() - t0:.1f} s"
    accuracy = evaluate(qat, x_te, y_te)
    amct.save_quant_retrain_model(cfg, qat, record, str(out / "qat"), sample)
    deploy = out / "qat_deploy_model.onnx"
    return [
        ("QAT W8A8 (ULQ + ARQ), torch", f"{accuracy:.2%}", took),
        ("QAT deploy ONNX, ORT int8 kernels", f"{ort_accuracy(deploy, x_te, y_te):.2%}", ""),
    ]
