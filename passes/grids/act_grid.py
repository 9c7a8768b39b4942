"""A quantized layer's activation grid: 8 or 16 bits, read from the record's ``act_type``.

A record entry without ``act_type`` (AMCT's default) or with ``"INT8"`` is on the int8 grid
``[-128, 127]``; ``"INT16"`` (AMCT's A16W8, written by calibration when the config asks for
``num_bits: 16`` / ``dst_type: INT16``) is on ``[-32768, 32767]``, 256 times finer over the same
range. ``offset_d`` is a zero point on that grid. ONNX QuantizeLinear takes int16 from opset 21
(``MIN_OPSET``): a graph that gets a 16-bit Q/DQ pair is upgraded first (``opset_upgrade``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

ACT_TYPE_BITS = {"INT8": 8, "INT16": 16}
ZERO_POINT_DTYPE = {8: np.int8, 16: np.int16}
MIN_OPSET = {8: 10, 16: 21}


def act_bits(rec) -> int:
    """Bit width of the layer's activation grid (8 when ``act_type`` is absent).

    Raises:
        KeyError: an ``act_type`` other than INT8/INT16 (``record_check`` reports it first).
    """
    act_type = getattr(rec, "act_type", None)
    return 8 if act_type is None else ACT_TYPE_BITS[act_type]


def act_type_field(num_bits: int) -> str | None:
    """The ``act_type`` to record for ``num_bits``: None (AMCT's default INT8) or ``"INT16"``."""
    return None if num_bits == 8 else f"INT{num_bits}"


def act_range(bits: int) -> tuple[int, int]:
    """``(qmin, qmax)`` of a signed ``bits`` grid."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def zero_point(rec) -> np.ndarray:
    """``offset_d`` as the zero-point scalar of the layer's QuantizeLinear (int8 or int16)."""
    return np.asarray(rec.offset_d, ZERO_POINT_DTYPE[act_bits(rec)])


def opset_needed(records: Mapping[str, object]) -> int:
    """The lowest default-domain opset whose QuantizeLinear takes every record's grid."""
    return max((MIN_OPSET[act_bits(rec)] for rec in records.values()), default=MIN_OPSET[8])


def wide_layers(records: Mapping[str, object]) -> list[str]:
    """Layers whose activations are on a grid wider than int8 (no ConvInteger for them)."""
    return sorted(name for name, rec in records.items() if act_bits(rec) > 8)


def with_opset_upgrade(records: Mapping[str, object], passes: tuple[str, ...]) -> tuple[str, ...]:
    """``passes``, preceded by ``opset_upgrade`` when a record's grid needs a newer opset."""
    return ("opset_upgrade", *passes) if opset_needed(records) > MIN_OPSET[8] else passes
