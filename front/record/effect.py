"""Record fields that cannot take effect: refused, or warned about, naming the field.

``save_model`` quantizes with ``scale_d``/``offset_d``/``scale_w``; three other fields a record
may hold would be silently ignored:

* ``offset_w`` other than 0: weights are symmetric (ARQ, AMCT's only weight algorithm; docs/amct.md
  §4.1), the deploy model has no weight zero point: refused (RecordError).
* ``shift_bit`` outside 1..16: search-N's range (docs/amct.md §4.6, ``runtime.kernels.search_n``);
  no int16 carry exists for another shift: refused.
* ``tensor_balance_factor`` on a layer the modified ONNX was not balanced for (no
  ``<layer>.tensor_balance_factor`` constant from ``apply_balance``): DMQ is applied by
  ``quantize_model``, so the factors change nothing here: a warning.
"""

from __future__ import annotations

import logging

from qdqforge.errors import RecordError
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph.ir import Graph
from qdqforge.runtime.kernels.search_n import MAX_SHIFT

log = logging.getLogger(__name__)


def check_field_effects(name: str, record: LayerRecord, graph: Graph, where: str) -> None:
    """Refuse ``offset_w``/``shift_bit`` values that cannot apply; warn on unused DMQ factors.

    Raises:
        RecordError: names the record, the layer, the field and what is allowed.
    """
    if any(record.offset_w):
        raise RecordError(
            f"{where}: layer '{name}': offset_w={list(record.offset_w)[:8]}; allowed: 0 (weights "
            "are quantized symmetrically: a weight offset cannot take effect)"
        )
    bad = [s for s in record.shift_bit if not 1 <= s <= MAX_SHIFT]
    if bad:
        raise RecordError(
            f"{where}: layer '{name}': shift_bit={bad[:8]}; allowed: integers in 1..{MAX_SHIFT} "
            "(search-N's right shifts)"
        )
    if record.tensor_balance_factor and f"{name}.tensor_balance_factor" not in graph.gs.tensors():
        log.warning(
            "%s: layer '%s': tensor_balance_factor has no effect: the modified ONNX was not "
            "DMQ-balanced for this layer (dmq_balancer_param off when quantize_model ran)",
            where,
            name,
        )
