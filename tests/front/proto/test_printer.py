"""front.proto.printer prints what protobuf's text_format prints (as_utf8=True), byte for byte.

Records with every kind of awkward value (float32 extremes, subnormals, signed zeros, NaN and
infinities, every power of two, random float32 bit patterns, int32/uint32 limits, non-ASCII and
escaped layer names, bytes, enums, nested prune records), the AMCT configuration files of the
config tests, and messages it leaves to text_format (map fields, Any).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import any_pb2, struct_pb2, text_format
from hypothesis import given, settings
from hypothesis import strategies as st

from qdqforge.errors import ConfigError
from qdqforge.front.proto.printer import message_text
from qdqforge.front.proto.schema import message_class
from qdqforge.front.proto.text import parse_text

GOLDEN = Path(__file__).parents[1] / "config" / "golden"
AWKWARD_NAMES = [
    "conv1",
    "blocks.0.attn",
    "é/ü\u4e2d",
    'quote"back\\slash',
    "tab\there\nline",
    "\x01",
]


def _float32_edges() -> list[float]:
    powers = [2.0**k for k in range(-149, 128)]
    specials = [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38]
    specials += [float("inf"), float("-inf"), float("nan")]
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    random = [float(v) for v in bits.view(np.float32)]  # NaN payloads among them
    decimal = [float(np.float32(v)) for v in (0.1, 1 / 3, 0.9, 123456789.0, 1e16, 9.999999e-5)]
    return powers + [-p for p in powers] + specials + random + decimal


def _record(floats: list[float]) -> object:
    record = message_class("ScaleOffsetRecord")()
    for i, name in enumerate(AWKWARD_NAMES):
        entry = record.record.add(key=name)
        value = entry.value
        value.scale_d, value.offset_d = floats[i], (-(2**31), 2**31 - 1, 0, -1, 7, 42)[i]
        value.scale_w.extend(floats[i::3])
        value.offset_w.extend([0, -(2**31), 2**31 - 1])
        value.shift_bit.extend([0, 2**32 - 1])
        value.tensor_balance_factor.extend(floats[-50:])
        value.skip_fusion = bool(i % 2)
        value.dst_type = "INT4" if i % 2 else "INT8"
        entry.kv_cache_value.scale.extend(floats[:3])
    prune = record.prune_record.add()
    node = prune.producer.add(name="producer \u00e9")
    node.attr.add(name="kind", type=3, s=bytes(range(256)), f=float("nan"), i=-(2**63))
    node.attr.add(name="list", type=6, strings=[b"", b"\x00\xff", "é".encode()], ints=[2**63 - 1])
    prune.selective_prune.name = "sel"
    return record


def test_records_print_as_text_format_prints_them():
    record = _record(_float32_edges())
    text = message_text(record)
    assert text == text_format.MessageToString(record, as_utf8=True)
    assert "nan" in text and "inf" in text and "\u4e2d" in text and "\\303\\251" in text


def test_an_empty_message_prints_nothing():
    record = message_class("ScaleOffsetRecord")()
    assert message_text(record) == text_format.MessageToString(record, as_utf8=True) == ""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=6, max_size=40))
def test_any_float32_bit_pattern_prints_as_text_format(bits):
    floats = [struct.unpack("<f", struct.pack("<I", b))[0] for b in bits]
    record = _record(floats * 2)
    assert message_text(record) == text_format.MessageToString(record, as_utf8=True)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.cfg")), ids=lambda p: p.name)
def test_config_files_print_as_text_format(path):
    kind = "AMCTRetrainConfig" if "qat" in path.name else "AMCTConfig"
    msg = parse_text(path.read_text(), kind, ConfigError, str(path))
    assert message_text(msg) == text_format.MessageToString(msg, as_utf8=True)


def test_map_fields_and_any_are_left_to_text_format():
    structured = struct_pb2.Struct()
    structured.update({"b": 1.5, "a": [True, "x"], "c": {"d": None}})
    packed = any_pb2.Any()
    packed.Pack(structured)
    for msg in (structured, packed, struct_pb2.Value(struct_value=structured)):
        assert message_text(msg) == text_format.MessageToString(msg, as_utf8=True)
