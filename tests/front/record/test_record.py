"""Record files: golden AMCT record parses, round trips are byte-identical, errors name lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qdqforge.errors import RecordError
from qdqforge.front.record.file import (
    LayerRecord,
    format_record,
    parse_record,
    read_record,
    update_record,
    write_record,
)

GOLDEN = Path(__file__).parents[1] / "config" / "golden" / "amct_record.txt"


def _f32(value: float) -> float:
    return float(np.float32(value))


def test_golden_amct_record_parses():
    records = read_record(GOLDEN)
    assert list(records) == ["conv1", "layer1.0.conv1", "conv_1"]
    conv = records["layer1.0.conv1"]
    assert conv.scale_d == _f32(0.00392156886)
    assert conv.offset_d == -128
    assert conv.scale_w == (_f32(0.00106807391), _f32(0.00104224426))
    assert conv.offset_w == (0, 0)
    assert conv.dst_type == "INT8"
    assert records["conv_1"].tensor_balance_factor == (_f32(1.04744744), _f32(1.44586647))
    assert records["conv_1"].dst_type is None  # absent, not defaulted


def test_round_trip_is_byte_identical(tmp_path):
    first = tmp_path / "a.txt"
    second = tmp_path / "b.txt"
    write_record(first, read_record(GOLDEN))
    write_record(second, read_record(first))
    assert first.read_bytes() == second.read_bytes()
    assert read_record(second) == read_record(GOLDEN)


def test_same_content_gives_same_bytes_whatever_the_order():
    a = LayerRecord(scale_d=0.5, offset_d=-128, scale_w=(0.25,), offset_w=(0,))
    b = LayerRecord(scale_d=0.125, offset_d=3, shift_bit=(4, 5), skip_fusion=True)
    assert format_record({"x": a, "y": b}) == format_record({"y": b, "x": a})


def test_all_fields_round_trip():
    record = LayerRecord(
        scale_d=0.5, offset_d=-3, scale_w=(0.5, 0.25), offset_w=(0, 0), shift_bit=(1, 2),
        tensor_balance_factor=(1.5,), skip_fusion=True, dst_type="INT4", act_type="INT8",
        wts_type="INT4", fakequant_precision_mode="FORCE_FP16_QUANT", scale_h=0.125, offset_h=1,
        scale_r=(0.75,), offset_r=(0,),
    )  # fmt: skip
    text = format_record({"rnn": record})
    assert parse_record(text) == {"rnn": record}
    assert format_record(parse_record(text)) == text


def test_update_record_merges_and_keeps_other_layers(tmp_path):
    path = tmp_path / "rec.txt"
    update_record(path, "fc", scale_w=[0.5], offset_w=[0])
    update_record(path, "conv", scale_d=0.25, offset_d=-128)
    merged = update_record(path, "fc", scale_d=0.125, offset_d=2)
    assert merged == LayerRecord(scale_d=0.125, offset_d=2, scale_w=(0.5,), offset_w=(0,))
    assert read_record(path) == {"conv": LayerRecord(scale_d=0.25, offset_d=-128), "fc": merged}
    update_record(path, "fc", scale_d=None)
    assert read_record(path)["fc"].scale_d is None


def test_update_record_keeps_prune_records(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text('prune_record { producer { name: "conv1" } }\n')
    update_record(path, "conv1", scale_d=0.5)
    text = path.read_text()
    assert "prune_record {" in text and 'name: "conv1"' in text


def test_update_record_rejects_unknown_field(tmp_path):
    with pytest.raises(RecordError, match="did you mean 'scale_d'"):
        update_record(tmp_path / "rec.txt", "fc", scale_dd=0.5)


def test_empty_file_is_an_empty_record(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert read_record(path) == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('record {\n  key: "a"\n  value {\n    scale_d: 0.5\n', r":4:"),
        ('record {\n  key: "a"\n  value { scale_d: abc }\n}\n', r":3:"),
        ('record {\n  key: "a"\n  value { scale_dd: 1 }\n}\n', r":3:.*did you mean: scale_d"),
        ("record { value { scale_d: 1 } }\n", r"no key"),
        ('record { key: "a" value {} }\nrecord { key: "a" value {} }\n', r":2: layer 'a'"),
        ('record { key: "a" value { offset_d: 1.5 } }\n', r":1:"),
    ],
    ids=["truncated", "bad-number", "unknown-field", "no-key", "duplicate", "float-for-int"],
)
def test_malformed_record_names_the_line(text, match):
    with pytest.raises(RecordError, match=match):
        parse_record(text, "rec.txt")


def test_missing_file_is_a_record_error(tmp_path):
    with pytest.raises(RecordError, match="cannot read record file"):
        read_record(tmp_path / "nope.txt")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "rec.txt"
    write_record(path, {"a": LayerRecord(scale_d=1.0)})
    write_record(path, {"b": LayerRecord(scale_d=2.0)})
    assert [p.name for p in tmp_path.iterdir()] == ["rec.txt"]
    assert list(read_record(path)) == ["b"]


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (LayerRecord(offset_d=1.5), "offset_d=1.5 .*expected an int32"),
        (LayerRecord(scale_d="x"), "scale_d='x' .*expected a float"),
        (LayerRecord(shift_bit=(-1,)), r"shift_bit=\(-1,\) .*uint32"),
    ],
    ids=["float-offset", "str-scale", "negative-shift"],
)
def test_bad_values_are_record_errors_and_nothing_is_written(tmp_path, record, match):
    path = tmp_path / "rec.txt"
    with pytest.raises(RecordError, match="layer 'a': " + match):
        write_record(path, {"a": record})
    assert not path.exists()


def test_numpy_values_are_accepted(tmp_path):
    path = tmp_path / "rec.txt"
    scales = np.array([0.5, 0.25], dtype=np.float32)
    update_record(path, "conv", scale_w=scales, offset_d=np.int64(-128))
    assert read_record(path)["conv"] == LayerRecord(offset_d=-128, scale_w=(0.5, 0.25))
