"""Record fields that cannot take effect are refused or warned about, naming the field.

The property: any ``offset_w`` / ``shift_bit`` values are accepted exactly when every offset is
0 and every shift lies in 1..16; otherwise the RecordError names the layer and the field. A
``tensor_balance_factor`` on a layer the modified ONNX was not DMQ-balanced for is a warning at
``save_model``; on a balanced layer it is silent.
"""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

import qdqforge
from qdqforge.errors import RecordError
from qdqforge.front.record.effect import check_field_effects
from qdqforge.front.record.file import LayerRecord, read_record, write_record
from qdqforge.graph import io

NO_EFFECT = "tensor_balance_factor has no effect"


@given(
    offsets=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4),
    shifts=st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
def test_offsets_and_shifts_are_usable_or_refused(world, offsets, shifts):
    graph = io.load(world.onnx)
    record = LayerRecord(scale_d=0.1, offset_d=0, offset_w=tuple(offsets), shift_bit=tuple(shifts))
    usable = not any(offsets) and all(1 <= s <= 16 for s in shifts)
    try:
        check_field_effects("conv", record, graph, "r.txt")
    except RecordError as error:
        assert not usable
        field = "offset_w=" if any(offsets) else "shift_bit="
        assert f"r.txt: layer 'conv': {field}" in str(error)
        return
    assert usable


def test_unused_balance_factors_are_warned_about(world, tmp_path, caplog):
    records = read_record(world.record)
    conv = records["conv"]
    records["conv"] = LayerRecord(**{**vars(conv), "tensor_balance_factor": (1.0, 2.0, 1.0)})
    record = write_record(tmp_path / "r.txt", records)
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.record.effect"):
        qdqforge.save_model(str(world.onnx), str(record), str(tmp_path / "net"))
    assert f"layer 'conv': {NO_EFFECT}" in caplog.text


def test_balanced_layers_stay_silent(world, tmp_path, caplog):
    record = tmp_path / "dmq.txt"
    record.write_text(world.dmq_record.read_text())
    onnx_file = tmp_path / "m.onnx"
    qdqforge.quantize_model(
        str(world.dmq_config), str(onnx_file), str(record), world.model, world.x
    )
    graph = io.load(onnx_file)
    balanced = LayerRecord(scale_d=0.1, offset_d=0, tensor_balance_factor=(1.0, 2.0, 1.0))
    with caplog.at_level(logging.WARNING, logger="qdqforge.front.record.effect"):
        for name in read_record(world.dmq_record):
            check_field_effects(name, balanced, graph, "dmq.txt")
    assert NO_EFFECT not in caplog.text
