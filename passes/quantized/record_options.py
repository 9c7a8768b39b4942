"""Options of the passes that quantize with recorded grids (``act_quant``, ``fake_quant``,
``insert_qdq``, ``integer_layers``).

``records`` maps a torch layer name to its record entry: an object with ``scale_d``,
``offset_d``, ``scale_w``, ``offset_w``, ``act_type`` (and ``scale_h``/``offset_h`` for a MatMul
between two activations), as ``front.record`` reads it from a record file. Layers not in it are
left float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordOptions:
    """``records``: ``{layer: record entry}`` (module docstring)."""

    records: Mapping[str, Any] = field(default_factory=dict)
