"""Record texts parsed or printed before are not parsed again, and the cache cannot go stale.

``front.proto.text`` remembers messages by the SHA-256 of their text: these tests show that a
text it printed parses to exactly the message it printed (what makes remembering a printed
text sound), that every hit is a fresh message, that any other text is parsed anew and that a
file edited in place behind the same size and modification time is read as it now is.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from google.protobuf import text_format

from qdqforge.errors import RecordError
from qdqforge.front.proto import text as proto_text
from qdqforge.front.proto.schema import message_class
from qdqforge.front.record.file import LayerRecord, read_record, update_records, write_record

RECORD = "ScaleOffsetRecord"


def _awkward_records(seed: int) -> dict[str, LayerRecord]:
    rng = np.random.default_rng(seed)
    floats = np.concatenate(
        [
            (rng.standard_normal(64) * 10.0 ** rng.integers(-30, 30, 64)).astype(np.float32),
            np.array([1e-45, -0.0, 3.4028235e38, np.inf, -np.inf, 0.1, 1 / 3], np.float32),
        ]
    )
    return {
        f"layer{i}": LayerRecord(
            scale_d=float(floats[i]),
            offset_d=int(rng.integers(-32768, 32767)),
            scale_w=tuple(float(v) for v in rng.permutation(floats)[:9]),
            offset_w=(0,) * 9,
            tensor_balance_factor=tuple(float(v) for v in floats[-7:]),
            dst_type="INT4" if i % 2 else None,
        )
        for i in range(12)
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_printed_text_parses_to_the_printed_message(tmp_path, seed):
    path = tmp_path / "record.txt"
    write_record(path, _awkward_records(seed))
    text = path.read_text()
    fresh = message_class(RECORD)()
    text_format.Parse(text, fresh)  # protobuf's own parser, no cache
    remembered = proto_text.parse_text(text, RECORD, RecordError)
    assert remembered.SerializeToString(deterministic=True) == fresh.SerializeToString(
        deterministic=True
    )
    assert read_record(path) == _awkward_records(seed)  # float32 values, as written


def test_every_hit_is_a_fresh_message():
    text = 'record { key: "a" value { scale_d: 0.5 offset_d: 1 } }\n'
    first = proto_text.parse_text(text, RECORD, RecordError)
    first.record[0].value.scale_d = 7.0
    second = proto_text.parse_text(text, RECORD, RecordError)
    assert second.record[0].value.scale_d == 0.5
    assert second is not first


def test_any_other_text_is_parsed_anew():
    base = 'record { key: "a" value { scale_d: 0.5 offset_d: 1 } }\n'
    proto_text.parse_text(base, RECORD, RecordError)
    changed = proto_text.parse_text(base.replace("0.5", "0.25"), RECORD, RecordError)
    assert changed.record[0].value.scale_d == 0.25
    with pytest.raises(RecordError, match="scale_dd"):
        proto_text.parse_text(base.replace("scale_d", "scale_dd"), RECORD, RecordError)
    with pytest.raises(RecordError, match="scale_dd"):  # a failure is never remembered
        proto_text.parse_text(base.replace("scale_d", "scale_dd"), RECORD, RecordError)


def test_a_file_edited_behind_the_same_size_and_time_is_read_as_it_is(tmp_path):
    path = tmp_path / "record.txt"
    write_record(path, {"conv": LayerRecord(scale_d=0.5, offset_d=-128)})
    assert read_record(path)["conv"].scale_d == 0.5
    stat = path.stat()
    path.write_text(path.read_text().replace("0.5", "0.7"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert read_record(path)["conv"].scale_d == pytest.approx(0.7)


def test_updates_read_what_the_file_holds(tmp_path):
    path = tmp_path / "record.txt"
    update_records(path, {"conv": {"scale_d": 0.5, "offset_d": 0}})
    path.write_text(path.read_text().replace("0.5", "0.25"))  # edited by hand meanwhile
    merged = update_records(path, {"conv": {"offset_d": 3}})
    assert merged["conv"].scale_d == 0.25 and read_record(path)["conv"].offset_d == 3


def test_the_cache_keeps_a_bounded_number_of_texts():
    for i in range(proto_text._ParsedTexts.ENTRIES + 5):
        proto_text.parse_text(f'record {{ key: "l{i}" }}\n', RECORD, RecordError)
    assert len(proto_text._PARSED._binary) == proto_text._ParsedTexts.ENTRIES
