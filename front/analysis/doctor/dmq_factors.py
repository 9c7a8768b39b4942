"""The DMQ balance factors the doctor applies: the record's, else measured on ``input_data``.

Measuring is ``quantize_preprocess``'s graph (the ``dmq_statistics`` recipe of
:mod:`qdqforge.front.recipes`: canonicalize -> fold_bn -> dmq_observe; reimported) run once on
``input_data``: ``s_j = a_j^alpha / w_j^(1 - alpha)`` with ``a_j`` the
batch's ``max |X|`` per input channel (``kernels.dmq``, docs/amct.md §4.4).
"""

from __future__ import annotations

import logging

import onnx
import torch

from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.recipes import dmq_statistics
from qdqforge.front.record.dmq_factors import dmq_layers
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io
from qdqforge.runtime import reimport
from qdqforge.runtime.converters.qdqforge_observers import DmqObserverOp

log = logging.getLogger(__name__)


def balance_factors_for(
    proto: onnx.ModelProto, inputs: tuple, config: QuantConfig, records: dict[str, LayerRecord]
) -> dict[str, tuple[float, ...]]:
    """``{layer: tensor_balance_factor}`` of every enabled DMQ layer of ``config``."""
    wanted = dmq_layers(config)
    recorded = {
        k: records[k].tensor_balance_factor
        for k in wanted
        if k in records and records[k].tensor_balance_factor
    }
    if len(recorded) == len(wanted):
        return recorded
    log.info("measuring DMQ factors of %d layer(s) on input_data", len(wanted) - len(recorded))
    return {**measure_balance_factors(proto, inputs, config), **recorded}


def measure_balance_factors(
    proto: onnx.ModelProto, inputs: tuple, config: QuantConfig
) -> dict[str, tuple[float, ...]]:
    """Factors of every enabled DMQ layer from one forward of ``inputs`` (module docstring)."""
    graph = dmq_statistics(config).run(proto)
    module = reimport(io.to_proto(graph)).eval()
    with torch.no_grad():
        module(*inputs)
    observers = [m for m in module.modules() if isinstance(m, DmqObserverOp)]
    return {op.layer: tuple(float(v) for v in op.factors().tolist()) for op in observers}
