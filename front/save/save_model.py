"""``save_model``: the fake-quant ONNX of AMCT's PTQ flow (docs/amct.md §5), as standard QDQ.

modified ONNX + record -> insert_qdq (activation Q/DQ with ``scale_d``/``offset_d``, weight Q/DQ
with ``scale_w``) -> ``<save_path>_fake_quant_model.onnx``. The balance Muls and folded BN of the
modified ONNX stay. A layer of the record without ``scale_d`` means calibration saw fewer than
``batch_num`` batches: a CalibrationError says so (AMCT leaves an empty record silently).
The deploy model runs Conv/Linear layers in int8 with int32 bias (layers with 16-bit
activations as DequantizeLinear + float op). The writing itself is
:mod:`qdqforge.front.save.write_models`, shared with QAT.

Then the save is verified (:mod:`qdqforge.front.save.verify`) on the example inputs
``quantize_model`` stored as ``<modified>.inputs.npz`` (or the keyword ``input_data``):
torch reimport vs fake-quant vs deploy on every integer grid, ``<save_path>_verify.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from qdqforge.errors import CalibrationError
from qdqforge.front.entry.example_inputs import inputs_path, load_example_inputs
from qdqforge.front.ptq.calibration import read_progress
from qdqforge.front.record.check import check_record
from qdqforge.front.record.file import read_record
from qdqforge.front.save.verify_budget import VerifyBudget
from qdqforge.front.save.write_models import (
    SavedModels,
    output_path,
    saved_outputs,
    write_quant_models,
)
from qdqforge.graph import io
from qdqforge.graph.detached import reap_dropped
from qdqforge.graph.path_roles import check_roles

log = logging.getLogger(__name__)


def fake_quant_path(save_path: str | os.PathLike) -> Path:
    """``<save_path>_fake_quant_model.onnx``; a ``dir/`` save_path means no name prefix."""
    return output_path(save_path, "fake_quant")


def save_model(
    modfied_onnx_file: str | os.PathLike,
    record_file: str | os.PathLike,
    save_path: str | os.PathLike,
    *,
    input_data=None,
    verify: bool | VerifyBudget = True,
) -> SavedModels:
    """Write the fake-quant and deploy models for the calibrated record.

    Args:
        modfied_onnx_file: the modified ONNX ``quantize_model`` wrote.
        record_file: the record with ``scale_d``/``offset_d``/``scale_w`` of every layer.
        save_path: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).
        input_data: inputs for the save-time check (qdqforge extension; default: the ones
            ``quantize_model`` stored beside the modified ONNX).
        verify: False skips the check; a ``VerifyBudget`` replaces the default budget.

    Returns:
        The paths of ``<save_path>_fake_quant_model.onnx`` and ``<save_path>_deploy_model.onnx``.

    Raises:
        CalibrationError: some layer has no ``scale_d`` (too few calibration batches).
        RecordError: the record names layers the modified ONNX lacks (or the reverse), or holds
            scales/offsets off the layer's grid (int8, or int16 for ``act_type`` INT16).
        VerificationError: torch, fake-quant and deploy disagree beyond the budget; the models
            and ``<save_path>_verify.json`` are written all the same.
    """
    check_roles(
        "save_model",
        inputs={
            "modified_onnx_file": modfied_onnx_file,
            "record_file": record_file,
            "example inputs": inputs_path(modfied_onnx_file),
        },
        outputs=saved_outputs(save_path),
    )
    records = {k: r for k, r in read_record(record_file).items() if r.scale_w or r.scale_d}
    if not records:
        raise CalibrationError(_incomplete_message(record_file, []))
    reap_dropped(_file_bytes(modfied_onnx_file))  # e.g. the calibration module, let go
    graph = io.load(modfied_onnx_file, mapped=True)  # external data: read as the save reads it
    # first: a record rewritten by another flow sharing its path also lacks scale_d
    check_record(graph, records, record_file, modfied_onnx_file)
    missing = sorted(name for name, rec in records.items() if rec.scale_d is None)
    if missing:
        raise CalibrationError(_incomplete_message(record_file, missing))
    inputs = _verify_inputs(modfied_onnx_file, input_data) if verify is not False else None
    return write_quant_models(graph, records, save_path, verify_inputs=inputs, verify=verify)


def _file_bytes(onnx_file) -> int:
    """Bytes of ``onnx_file`` and of its external data (``<file>.data``), if any."""
    paths = (Path(onnx_file), Path(f"{os.fspath(onnx_file)}.data"))
    return sum(path.stat().st_size for path in paths if path.is_file())


def _verify_inputs(onnx_file, input_data):
    if input_data is not None:
        return input_data
    inputs = load_example_inputs(onnx_file)
    if inputs is None:
        log.warning(
            "no %s (quantize_model writes it) and no input_data: save_model skips verification",
            inputs_path(onnx_file),
        )
    return inputs


def _incomplete_message(record_file, missing: list[str]) -> str:
    progress = read_progress(record_file)
    seen = (
        f"calibration saw {progress['batches_seen']} of batch_num={progress['batch_num']} batches"
        if progress
        else "no calibration forward was recorded"
    )
    names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"{os.fspath(record_file)}: {seen}, so layer(s) {names or '(all)'} have no "
        "scale_d/offset_d; run the quantize_model calibration module for batch_num forwards "
        "before save_model"
    )
