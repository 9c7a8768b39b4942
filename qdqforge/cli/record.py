"""``qdqforge record show FILE``: a scale/offset record as a table.

Columns: layer, scale_d, offset_d, number of weight scales and their range, shift_bit values and
the DMQ balance-factor range. ``-`` marks a field the record does not have. An ``offset_d`` on
a grid other than int8 carries its ``act_type`` (``-31853 (INT16)``). Layer names are escaped
(:func:`qdqforge.safe_text.shown`): a record is a file anyone can write.
"""

from __future__ import annotations

import argparse

from qdqforge.cli.say import say
from qdqforge.front.record.file import LayerRecord, read_record
from qdqforge.safe_text import shown

COLUMNS = (
    "layer",
    "scale_d",
    "offset_d",
    "#scale_w",
    "scale_w range",
    "shift_bit",
    "balance range",
)


def register(subparsers) -> None:
    """Add ``record`` with its ``show`` action."""
    parser = subparsers.add_parser("record", help="inspect AMCT scale/offset record files")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print a record file as a table")
    show.add_argument("file", help="record file (ScaleOffsetRecord protobuf text)")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    """Print the table for ``args.file``."""
    records = read_record(args.file)
    if not records:
        say(f"{shown(args.file)}: empty record (calibration did not finish?)")
        return 0
    say(format_table(records))
    return 0


def format_table(records: dict[str, LayerRecord]) -> str:
    """The record as aligned text columns, layers in file order."""
    rows = [COLUMNS, *(_row(shown(name), rec) for name, rec in records.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(name: str, rec: LayerRecord) -> tuple[str, ...]:
    return (
        name,
        _num(rec.scale_d),
        _offset(rec),
        str(len(rec.scale_w)) if rec.scale_w else "-",
        _span(rec.scale_w),
        _ints(rec.shift_bit),
        _span(rec.tensor_balance_factor),
    )


def _offset(rec: LayerRecord) -> str:
    if rec.offset_d is None:
        return "-"
    wide = rec.act_type not in (None, "INT8")
    return f"{rec.offset_d} ({shown(rec.act_type)})" if wide else str(rec.offset_d)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _span(values: tuple[float, ...]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return _num(low) if low == high else f"{_num(low)} .. {_num(high)}"


def _ints(values: tuple[int, ...]) -> str:
    if not values:
        return "-"
    distinct = sorted(set(values))
    return (
        ",".join(map(str, distinct)) if len(distinct) <= 4 else f"{distinct[0]} .. {distinct[-1]}"
    )
