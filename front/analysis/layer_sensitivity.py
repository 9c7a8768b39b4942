"""Layer sensitivity for ``accuracy_based_auto_calibration``: AMCT's 'CosineSimilarity'.

For each calibrated layer ``L``, the float graph (the modified ONNX's passes without
``arq_weights``: same BN folding, same DMQ balance) gets Q/DQ on ``L`` alone, with ``L``'s
recorded ``scale_d``/``offset_d``/``scale_w`` (``insert_qdq``), and runs in onnxruntime
(session with ORT_DISABLE_ALL) as :class:`OnnxLayerRunner` of the sensitivity engine
(:mod:`qdqforge.front.analysis.sensitivity`)::

    cos_L = <y, y_L> / (|y| |y_L|)      (all outputs flattened and concatenated, float64)

where ``y`` is the float graph's output. The lowest cosine is the most sensitive layer: it comes
first in the ranking (ties by name). The quantization doctor runs the same engine with its torch
runner and ranks by SQNR.
"""

from __future__ import annotations

from torch import nn

from qdqforge.front.analysis.sensitivity import Variant, rank, sweep
from qdqforge.front.analysis.sensitivity_metrics import CosineSimilarity, flatten_outputs
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.entry.inputs import normalize_input_data
from qdqforge.front.prelude import run_prelude
from qdqforge.front.ptq.ada_sites import warn_rounded_like_arq
from qdqforge.front.recipes import ptq_float_graph, qdq_model, recorded_factors
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import numerics
from qdqforge.graph.ir import Graph

COSINE = CosineSimilarity()


def float_graph(config_file, record_file, model: nn.Module, input_data) -> Graph:
    """The modified ONNX before ARQ: BN folded and DMQ balanced, weights still float."""
    api = "accuracy_based_auto_calibration"
    entry = run_prelude(api, model, input_data, config_file, load_quant_config)
    warn_rounded_like_arq(entry.config, "layer sensitivity")
    factors = recorded_factors(entry.config, record_file)
    return ptq_float_graph(entry.config, factors).run(entry.proto)


class OnnxLayerRunner:
    """The engine's runner for ``graph`` in onnxruntime: Q/DQ on one recorded layer at a time.

    Attributes:
        reference: the float graph's outputs on ``input_data`` (flattened, float64).
        layers: the layers of ``records``, in their order.
        variants: ``quantized`` only (weight and activation Q/DQ from the record).
    """

    variants = (Variant.QUANTIZED,)

    def __init__(self, graph: Graph, records: dict[str, LayerRecord], input_data) -> None:
        arrays = [t.detach().cpu().numpy() for t in normalize_input_data(input_data)]
        self.graph, self.records, self.layers = graph, records, tuple(records)
        self.feeds = numerics.feeds_for(graph, arrays)
        self.reference = flatten_outputs(numerics.run(graph, self.feeds))

    def run(self, layer: str, variant: Variant):
        """Outputs with only ``layer`` Q/DQ'd (``variant`` is always ``quantized``)."""
        rec = {layer: self.records[layer]}
        quantized = qdq_model(rec).run(self.graph)
        return flatten_outputs(numerics.run(quantized, self.feeds))


def layer_cosines(graph: Graph, records: dict[str, LayerRecord], input_data) -> dict[str, float]:
    """``{layer: cos(float output, output with only that layer quantized)}``."""
    return sweep(OnnxLayerRunner(graph, records, input_data)).values(COSINE)


def rank_by_cosine(cosines: dict[str, float]) -> list[str]:
    """Layer names, most sensitive (lowest cosine) first; ties by name."""
    return rank(cosines, COSINE)
