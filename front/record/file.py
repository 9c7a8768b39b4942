"""AMCT scale/offset record files (``ScaleOffsetRecord`` protobuf text, docs/amct.md §3).

Keys are torch module names. Reading gives ``{layer: LayerRecord}``; writing is atomic (temp file
and rename) and deterministic: layers sorted by name, fields in schema order, floats as the
shortest text that reads back as the same float32, so the same content always gives the same
bytes and ``write(read(write(x)))`` is byte-identical. ``None``/``()`` mean "field absent".

An empty file is an empty record (AMCT leaves the file empty until every layer has reported).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from qdqforge.errors import RecordError
from qdqforge.front.proto.schema import message_class
from qdqforge.front.proto.text import parse_text, to_text
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)

RECORD_MESSAGE = "ScaleOffsetRecord"


@dataclass(frozen=True)
class LayerRecord:
    """Quantization parameters of one layer; ``None`` or ``()`` means the field is not written.

    Attributes:
        scale_d: activation scale (per tensor).
        offset_d: activation offset, the zero point on the ``act_type`` grid (int8: -128 for
            post-ReLU data; int16 for ``act_type`` INT16).
        scale_w: weight scales, one (per tensor) or one per output channel.
        offset_w: weight offsets (always 0 in AMCT).
        shift_bit: per-channel right shift N of the int32 accumulator (reserved by AMCT).
        tensor_balance_factor: DMQ per-input-channel factors.
        skip_fusion: the layer was not fused with its BatchNorm.
        dst_type: the weight grid: ``"INT8"`` (AMCT default, also when absent) or
            ``"INT7"``/``"INT6"``/``"INT4"`` (stored in int8; ``passes.weight_grid``).
        act_type: activation data type: absent or ``"INT8"``, or ``"INT16"`` (AMCT's A16W8;
            :mod:`qdqforge.passes.grids.act_grid` reads the grid from it).
        wts_type: weight data type.
        fakequant_precision_mode: ``"DEFAULT"`` or ``"FORCE_FP16_QUANT"``.
        scale_h: RNN hidden-state scale.
        offset_h: RNN hidden-state offset.
        scale_r: RNN recurrent weight scales.
        offset_r: RNN recurrent weight offsets.
    """

    scale_d: float | None = None
    offset_d: int | None = None
    scale_w: tuple[float, ...] = ()
    offset_w: tuple[int, ...] = ()
    shift_bit: tuple[int, ...] = ()
    tensor_balance_factor: tuple[float, ...] = ()
    skip_fusion: bool | None = None
    dst_type: str | None = None
    act_type: str | None = None
    wts_type: str | None = None
    fakequant_precision_mode: str | None = None
    scale_h: float | None = None
    offset_h: int | None = None
    scale_r: tuple[float, ...] = ()
    offset_r: tuple[int, ...] = ()


FIELDS = tuple(f.name for f in dataclasses.fields(LayerRecord))
REPEATED = frozenset(n for n in FIELDS if isinstance(getattr(LayerRecord(), n), tuple))


def parse_record(text: str, source: str = "<record>") -> dict[str, LayerRecord]:
    """Parse record text into ``{layer: LayerRecord}`` in file order.

    Raises:
        RecordError: malformed or truncated text (naming the line), an entry without key or
            value, or a layer listed twice.
    """
    return _to_records(_parse_proto(text, source), text, source)


def format_record(records: dict[str, LayerRecord]) -> str:
    """Deterministic record text for ``records`` (layers sorted by name).

    Raises:
        RecordError: a value does not fit its field (names the layer and field).
    """
    return to_text(_to_proto(records))


def read_record(path: str | os.PathLike) -> dict[str, LayerRecord]:
    """Read a record file. See :func:`parse_record`.

    Raises:
        RecordError: unreadable file or malformed content.
    """
    return parse_record(_read_text(path), os.fspath(path))


def write_record(path: str | os.PathLike, records: dict[str, LayerRecord]) -> Path:
    """Write ``records`` atomically; returns the path written.

    Raises:
        RecordError: a value does not fit its field (nothing is written then).
        OutputError: the file cannot be written there.
    """
    target = Path(path)
    atomic_write_text(target, format_record(records))
    return target


def update_record(path: str | os.PathLike, layer: str, **fields) -> LayerRecord:
    """Merge ``fields`` into ``layer``'s entry of the record at ``path`` (created if missing).

    Other layers and entries this API does not model (prune records, KV-cache values) are kept.

    Args:
        path: record file.
        layer: torch module name.
        **fields: LayerRecord fields; sequences for repeated fields, ``None`` clears a field.

    Returns:
        The merged LayerRecord.

    Raises:
        RecordError: unknown field name, or the existing file is malformed.
    """
    return update_records(path, {layer: fields})[layer]


def update_records(
    path: str | os.PathLike,
    updates: dict[str, dict],
    expect_scale_w: dict[str, list[float]] | None = None,
) -> dict[str, LayerRecord]:
    """:func:`update_record` for several layers in one atomic rewrite; returns the merged ones.

    ``expect_scale_w`` (``{layer: scale_w}`` as read back from this file earlier) is checked on
    the text this call read, before anything is written: a record whose ``scale_w`` changed
    meanwhile was rewritten by another flow sharing the path.

    Raises:
        RecordError: unreadable record, unknown field, or a ``scale_w`` not the expected one.
    """
    for fields in updates.values():
        _check_field_names(fields)
    target = Path(path)
    text = _read_text(target) if target.exists() else ""
    proto = _parse_proto(text, os.fspath(target))
    current = _to_records(proto, text, os.fspath(target))  # validate keys before touching anything
    _check_scale_w(current, expect_scale_w or {}, os.fspath(target))
    merged = {}
    for layer, fields in updates.items():
        entry = next((e for e in proto.record if e.key == layer), None)
        entry = entry or proto.record.add(key=layer)
        merged[layer] = dataclasses.replace(_from_value(entry.value), **_normalize(fields))
        entry.value.Clear()
        _fill_value(entry.value, merged[layer], layer)
    _sort_entries(proto)
    atomic_write_text(target, to_text(proto))
    return merged


def _check_scale_w(current: dict[str, LayerRecord], expected: dict[str, list[float]], source: str):
    for layer, scale_w in expected.items():
        found = current.get(layer)
        if found is None or list(found.scale_w) != list(scale_w):
            raise RecordError(
                f"{source}: layer '{layer}': scale_w is no longer the one quantize_model wrote "
                "for this calibration module: another quantize_model or calibration sharing "
                "this record path rewrote the file; give each flow its own record_file and run "
                "quantize_model again"
            )


def _read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(f"cannot read record file {os.fspath(path)!r}: {e}") from e


def _parse_proto(text: str, source: str) -> Message:
    return parse_text(text, RECORD_MESSAGE, RecordError, source)


def _to_records(proto: Message, text: str, source: str) -> dict[str, LayerRecord]:
    records: dict[str, LayerRecord] = {}
    for index, entry in enumerate(proto.record):
        if not entry.key:
            raise RecordError(f"{source}: record entry #{index + 1} has no key (layer name)")
        if entry.key in records:
            line = _key_line(text, entry.key, occurrence=2)
            raise RecordError(f"{source}:{line}: layer {entry.key!r} is recorded twice")
        if not entry.HasField("value"):
            log.debug(
                "%s: entry %r has no layer value (KV-cache entry?); skipped", source, entry.key
            )
            continue
        records[entry.key] = _from_value(entry.value)
    if len(proto.prune_record):
        log.warning("%s: %d prune_record entries ignored", source, len(proto.prune_record))
    return records


def _key_line(text: str, key: str, occurrence: int) -> int | str:
    pattern = re.compile(r"\bkey\s*:\s*[\"']" + re.escape(key) + r"[\"']")
    matches = list(pattern.finditer(text))
    if len(matches) < occurrence:
        return "?"
    return text.count("\n", 0, matches[occurrence - 1].start()) + 1


def _from_value(value: Message) -> LayerRecord:
    kwargs = {}
    for name in FIELDS:
        if name in REPEATED:
            kwargs[name] = tuple(getattr(value, name))
        elif value.HasField(name):
            kwargs[name] = getattr(value, name)
    return LayerRecord(**kwargs)


def _fill_value(value: Message, record: LayerRecord, layer: str) -> None:
    for name in FIELDS:
        item = getattr(record, name)
        try:
            if name in REPEATED:
                getattr(value, name).extend(item)
            elif item is not None:
                setattr(value, name, item)
        except (TypeError, ValueError) as e:
            kind = value.DESCRIPTOR.fields_by_name[name].cpp_type
            raise RecordError(
                f"layer {layer!r}: {name}={item!r} cannot be written ({e}); "
                f"expected {_KINDS.get(kind, 'a value of the schema type')}"
            ) from e


_KINDS = {
    FieldDescriptor.CPPTYPE_INT32: "an int32",
    FieldDescriptor.CPPTYPE_UINT32: "a uint32 (>= 0)",
    FieldDescriptor.CPPTYPE_FLOAT: "a float",
    FieldDescriptor.CPPTYPE_BOOL: "a bool",
    FieldDescriptor.CPPTYPE_STRING: "a str",
}


def _to_proto(records: dict[str, LayerRecord]) -> Message:
    proto = message_class(RECORD_MESSAGE)()
    for key in sorted(records):
        entry = proto.record.add(key=key)
        entry.value.SetInParent()
        _fill_value(entry.value, records[key], key)
    return proto


def _sort_entries(proto: Message) -> None:
    entries = sorted(proto.record, key=lambda e: e.key)
    copies = [type(e)() for e in entries]
    for copy, entry in zip(copies, entries):
        copy.CopyFrom(entry)
    del proto.record[:]
    proto.record.extend(copies)


def _check_field_names(fields: dict) -> None:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        hints = {n: difflib.get_close_matches(n, FIELDS, n=1) for n in unknown}
        text = ", ".join(
            f"{n!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for n, h in hints.items()
        )
        raise RecordError(f"unknown record field(s) {text}; allowed: {', '.join(FIELDS)}")


def _normalize(fields: dict) -> dict:
    out = {}
    for name, item in fields.items():
        if name in REPEATED:
            out[name] = () if item is None else tuple(item)
        else:
            out[name] = item
    return out
