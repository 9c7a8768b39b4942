"""Layer sensitivity for ``accuracy_based_auto_calibration``: AMCT's 'CosineSimilarity'.

For each calibrated layer ``L``, the float graph (the modified ONNX's passes without
``arq_weights``: same BN folding, same DMQ balance) gets Q/DQ on ``L`` alone, with ``L``'s
recorded ``scale_d``/``offset_d``/``scale_w`` (``insert_qdq``), and runs in onnxruntime::

    cos_L = <y, y_L> / (|y| |y_L|)      (all outputs flattened and concatenated, float64)

where ``y`` is the float graph's output. The lowest cosine is the most sensitive layer: it comes
first in the ranking (ties by name). The quantization doctor (``front/doctor``) ranks by SQNR
with more detail; this small ranking keeps auto-calibration self-contained.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from qdqforge.front.config.layers import quant_layers_from_graph
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.entry.inputs import normalize_input_data
from qdqforge.front.export.to_onnx import export
from qdqforge.front.ptq.ada_sites import warn_rounded_like_arq
from qdqforge.front.ptq.quantize import modified_options, modified_passes
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import numerics
from qdqforge.graph.ir import Graph
from qdqforge.passes.grids.act_grid import with_opset_upgrade
from qdqforge.passes.infra.base import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline


def float_graph(config_file, record_file, model: nn.Module, input_data) -> Graph:
    """The modified ONNX before ARQ: BN folded and DMQ balanced, weights still float."""
    proto = export(model, normalize_input_data(input_data))
    config = load_quant_config(config_file, quant_layers_from_graph(model, proto))
    warn_rounded_like_arq(config, "layer sensitivity")
    passes = tuple(p for p in modified_passes(config) if p != "arq_weights")
    options = modified_options(config, record_file)
    return run_pipeline(proto, passes, ctx=PassContext(config=config), options=options).graph


def layer_cosines(graph: Graph, records: dict[str, LayerRecord], input_data) -> dict[str, float]:
    """``{layer: cos(float output, output with only that layer quantized)}``."""
    arrays = [t.detach().cpu().numpy() for t in normalize_input_data(input_data)]
    feeds = numerics.feeds_for(graph, arrays)
    reference = _flat(numerics.run(graph, feeds))
    cosines = {}
    for layer, rec in records.items():
        options = {"insert_qdq": {"records": {layer: rec}}}
        passes = with_opset_upgrade({layer: rec}, ("insert_qdq",))
        quantized = run_pipeline(graph.copy(), passes, options=options).graph
        cosines[layer] = cosine(reference, _flat(numerics.run(quantized, feeds)))
    return cosines


def rank_by_cosine(cosines: dict[str, float]) -> list[str]:
    """Layer names, most sensitive (lowest cosine) first; ties by name."""
    return sorted(cosines, key=lambda name: (cosines[name], name))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; two zero vectors are identical (1.0); a NaN/inf facing another value
    is -1.0, the most sensitive (a NaN would sort anywhere)."""
    if numerics.nonfinite_mismatch(a, b):
        return -1.0
    keep = np.isfinite(a)
    a, b = (a, b) if keep.all() else (a[keep], b[keep])
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else float(np.array_equal(a, b))


def _flat(outputs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(o, np.float64).reshape(-1) for o in outputs])
