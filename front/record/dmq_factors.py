"""Read the DMQ balance factors ``quantize_preprocess`` recorded, for ``apply_balance``.

``quantize_model`` with a DMQ config needs ``tensor_balance_factor`` of every enabled DMQ layer
in the record (docs/amct.md §1: the same record path as ``quantize_preprocess``).
"""

from __future__ import annotations

import math
import os

from qdqforge.errors import RecordError
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.record.file import read_record


def dmq_layers(config: QuantConfig) -> list[str]:
    """Enabled layers with ``dmq_balancer_param``, in config order."""
    return [c.name for c in config.layers if c.quant_enable and c.dmq_balancer_param is not None]


def recorded_balance_factors(
    record_file: str | os.PathLike, config: QuantConfig
) -> dict[str, tuple[float, ...]]:
    """``{layer: tensor_balance_factor}`` for every DMQ layer of ``config``.

    Raises:
        RecordError: the record lacks a DMQ layer's factors (names the layers and the fix), or a
            factor is not a positive finite number.
    """
    records = read_record(record_file)
    factors = {
        name: records[name].tensor_balance_factor for name in dmq_layers(config) if name in records
    }
    missing = [name for name in dmq_layers(config) if not factors.get(name)]
    if missing:
        raise RecordError(
            f"{os.fspath(record_file)}: no tensor_balance_factor for DMQ layer(s) "
            f"{', '.join(repr(m) for m in missing)}; run quantize_preprocess with the same record "
            "file and at least one forward pass first"
        )
    for name, values in factors.items():
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise RecordError(
                f"{os.fspath(record_file)}: layer '{name}': tensor_balance_factor must be positive "
                f"finite numbers, got {list(values)[:8]}; rerun quantize_preprocess to rewrite them"
            )
    return factors
