"""``save_model``: the fake-quant ONNX of AMCT's PTQ flow (spec §5), written as standard QDQ.

modified ONNX + record -> insert_qdq (activation Q/DQ with ``scale_d``/``offset_d``, weight Q/DQ
with ``scale_w``) -> ``<save_path>_fake_quant_model.onnx``. The balance Muls and folded BN of the
modified ONNX stay. A layer of the record without ``scale_d`` means calibration saw fewer than
``batch_num`` batches: a CalibrationError says so (AMCT leaves an empty record silently).
The writing itself is :mod:`qdqforge.front.quant_save`, shared with QAT.
"""

from __future__ import annotations

import os
from pathlib import Path

from qdqforge.errors import CalibrationError
from qdqforge.front.quant_save import output_path, write_quant_models
from qdqforge.front.record import read_record
from qdqforge.graph import io


def fake_quant_path(save_path: str | os.PathLike) -> Path:
    """``<save_path>_fake_quant_model.onnx``; a ``dir/`` save_path means no name prefix."""
    return output_path(save_path, "fake_quant")


def save_model(
    modfied_onnx_file: str | os.PathLike,
    record_file: str | os.PathLike,
    save_path: str | os.PathLike,
) -> Path:
    """Write the fake-quant model for the calibrated record.

    Args:
        modfied_onnx_file: the modified ONNX ``quantize_model`` wrote.
        record_file: the record with ``scale_d``/``offset_d``/``scale_w`` of every layer.
        save_path: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).

    Returns:
        The fake-quant model's path.

    Raises:
        CalibrationError: some layer has no ``scale_d`` (too few calibration batches).
    """
    records = {k: r for k, r in read_record(record_file).items() if r.scale_w or r.scale_d}
    missing = sorted(name for name, rec in records.items() if rec.scale_d is None)
    if missing or not records:
        names = ", ".join(missing) or "(all)"
        raise CalibrationError(
            f"{os.fspath(record_file)}: no scale_d/offset_d for layer(s) {names}; "
            "run the quantize_model calibration module for batch_num forwards before save_model"
        )
    return write_quant_models(io.load(modfied_onnx_file), records, save_path).fake_quant
