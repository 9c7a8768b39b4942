"""Catalogue rows: record files (syntax, field types and values, layers versus model/config).

``save_model`` gets the base modified ONNX with an edited copy of the calibrated record;
``quantize_model`` with the DMQ config gets an edited copy of the DMQ record. The record is the
base one (conv: scale_d, offset_d 0, four scale_w; fc: scale_d, offset_d -128, one scale_w).
"""

from __future__ import annotations

import torch

import qdqforge
from qdqforge.errors import CalibrationError, PassError, RecordError
from tests.reliability.catalogue import Case
from tests.reliability.world import net_and_input


def _save(w, record):
    return qdqforge.save_model(str(w.onnx), str(record), str(w.tmp / "out" / "net"))


def _edited(old: str, new: str):
    return lambda w: _save(w, w.text_with(w.record, old, new, "edited.txt"))


def _cut_before(marker: str, extra: int = 0):
    def call(w):
        text = w.record.read_text()
        return _save(w, w.write("cut.txt", text[: text.index(marker) + extra]))

    return call


def _record(name: str, call, error, match: str, what: str) -> Case:
    return Case(f"record:{name}", what, call, error, match)


def _other_model_record(w):
    from tests.reliability.cases_numerics import SharedWeights

    model, x = SharedWeights(), w.x.flatten(1)[:, :6]
    config = w.write("other.json", '{"batch_num": 1, "c": {"quant_enable": true}}')
    calib = w.quantize(config, model, x, record=w.tmp / "other.txt")
    calib(x)
    return _save(w, w.tmp / "other.txt")


def _dmq(old: str, new: str):
    def call(w):
        record = w.text_with(w.dmq_record, old, new, "dmq.txt")
        return w.quantize(w.dmq_config, record=record)

    return call


def _reused_record(w):
    """A calibrated record reused for a new calibration that stops after 1 of 2 batches."""
    record = w.copy_record()
    model, x = net_and_input(seed=1)
    calib = w.quantize(w.config, model, x, record=record)
    calib(x)
    return qdqforge.save_model(str(w.tmp / "m.onnx"), str(record), str(w.tmp / "out" / "net"))


def _shared_record_path(calibrate_first: bool):
    """Model A and a 1000x larger model B quantized with one record path; A calibrated, saved.

    B's ``quantize_model`` runs after A's calibration (``calibrate_first``: caught by the weight
    grid check of ``save_model``) or before it (caught when the calibration writes its scales).
    """

    def call(w):
        record = w.tmp / "shared.txt"
        model_a, x = net_and_input(seed=2)
        model_b, _ = net_and_input(seed=3)
        with torch.no_grad():
            for p in model_b.parameters():
                p.mul_(1000.0)
        onnx_a, onnx_b = w.tmp / "a.onnx", w.tmp / "b.onnx"
        calib = qdqforge.quantize_model(str(w.config), str(onnx_a), str(record), model_a, x)
        if calibrate_first:
            calib(x)
            calib(x)
        qdqforge.quantize_model(str(w.config), str(onnx_b), str(record), model_b, x)
        if not calibrate_first:
            calib(x)
            calib(x)
        return qdqforge.save_model(str(onnx_a), str(record), str(w.tmp / "out" / "a"))

    return call


FC = 'record {\n  key: "fc"'
CONV_S, CONV_D, CONV_W = "layer 'conv': scale_d", "layer 'conv': offset_d", "layer 'conv': scale_w"
CASES = [
    _record("truncated", _cut_before("offset_d", 5), RecordError, "cut.txt:5:", "cut mid-line"),
    _record(
        "truncated-block",
        _cut_before("offset_d: 0"),
        RecordError,
        "cut.txt",
        "cut between two fields, '{' never closed",
    ),
    _record("str-scale", _edited("scale_d: 0.0", 'scale_d: "a" #'), RecordError, ":4:", "str"),
    _record("float-offset", _edited("offset_d: 0", "offset_d: 1.5"), RecordError, ":5:", "1.5"),
    _record("offset-range", _edited("offset_d: 0", "offset_d: 300"), RecordError, CONV_D, "300"),
    _record(
        "int16-offset-without-act-type",
        _edited("offset_d: 0", "offset_d: 1000"),
        RecordError,
        "[-128, 127] (act_type absent: INT8)",
        "an int16 zero point on a layer whose act_type says INT8",
    ),
    _record(
        "unknown-act-type",
        _edited("offset_d: 0", 'offset_d: 0 act_type: "INT4"'),
        RecordError,
        "layer 'conv': act_type='INT4'; allowed: INT8 | INT16",
        "an activation type other than INT8/INT16",
    ),
    _record("negative-scale", _edited("scale_d: 0.0", "scale_d: -0.0"), RecordError, CONV_S, "<0"),
    _record("zero-scale", _edited("scale_d: 0.0", "scale_d: 0 #"), RecordError, CONV_S, "0"),
    _record("nan-scale", _edited("scale_d: 0.0", "scale_d: nan #"), RecordError, CONV_S, "nan"),
    _record("zero-scale-w", _edited("scale_w: 0.0014", "scale_w: 0 #"), RecordError, CONV_W, "w 0"),
    _record(
        "scale-w-count",
        _edited("    scale_w: 0.0015064572\n", ""),
        RecordError,
        "layer 'conv' has 3 scale_w",
        "3 weight scales for 4 channels",
    ),
    _record("missing-layer", _cut_before(FC), RecordError, "'fc'", "fc left out of the record"),
    _record(
        "extra-layer",
        lambda w: _save(w, w.write("x.txt", w.record.read_text().replace('"fc"', '"head"'))),
        RecordError,
        "'head'",
        "a layer the model does not have",
    ),
    _record(
        "other-model",
        _other_model_record,
        RecordError,
        "'c'",
        "the calibrated record of another model",
    ),
    _record(
        "duplicate-layer",
        lambda w: _save(w, w.write("dup.txt", w.record.read_text() * 2)),
        RecordError,
        "layer 'conv' is recorded twice",
        "every layer twice",
    ),
    _record(
        "missing-file",
        lambda w: _save(w, w.tmp / "none.txt"),
        RecordError,
        "none.txt",
        "a record path that does not exist",
    ),
    _record(
        "empty",
        lambda w: _save(w, w.write("empty.txt", "")),
        CalibrationError,
        "no calibration forward was recorded",
        "an empty record (no calibration ran)",
    ),
    _record(
        "shared-path-calibrated",
        _shared_record_path(calibrate_first=True),
        RecordError,
        "layer 'conv': 108 of 108 weights of the modified ONNX are not on the record's scale_w",
        "another quantize_model (a 1000x larger model) rewrote the record before save_model",
    ),
    _record(
        "shared-path-calibrating",
        _shared_record_path(calibrate_first=False),
        RecordError,
        "layer 'conv': scale_w is no longer the one quantize_model wrote",
        "another quantize_model rewrote the record before this calibration ended",
    ),
    _record(
        "reused-stale",
        _reused_record,
        CalibrationError,
        "calibration saw 1 of batch_num=2",
        "an old calibrated record reused by a calibration that stopped early",
    ),
    _record(
        "dmq-missing-layer",
        _dmq('key: "fc"', 'key: "fc_old"'),
        RecordError,
        "'fc'",
        "DMQ record without fc's factors (and with an unknown layer)",
    ),
    _record(
        "dmq-factor-count",
        _dmq("    tensor_balance_factor: 3.4099286\n", ""),
        PassError,
        "layer 'conv' needs 3 positive finite tensor_balance_factor values, got 2",
        "2 balance factors for 3 input channels",
    ),
    _record(
        "dmq-factor-zero",
        _dmq("tensor_balance_factor: 3.4099286", "tensor_balance_factor: 0"),
        RecordError,
        "'conv'",
        "a zero balance factor",
    ),
    _record(
        "offset-w-nonzero",
        _edited(
            '    offset_w: 0\n  }\n}\nrecord {\n  key: "fc"',
            '    offset_w: 3\n  }\n}\nrecord {\n  key: "fc"',
        ),
        RecordError,
        "layer 'conv': offset_w=[0, 0, 0, 3]; allowed: 0 (weights are quantized symmetrically",
        "offset_w 3 on symmetric weights (could not take effect)",
    ),
    _record(
        "shift-bit-out-of-range",
        _edited("    offset_w: 0\n  }\n}\n", "    offset_w: 0\n    shift_bit: 17\n  }\n}\n"),
        RecordError,
        "layer 'conv': shift_bit=[17]; allowed: integers in 1..16",
        "shift_bit 17, outside search-N's range",
    ),
]
