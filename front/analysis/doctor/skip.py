"""Rank layers by sensitivity and pick the ones to leave in float.

Rank: ascending SQNR of the model with only that layer quantized (weight and activation); the
first layer is the one whose quantization alone hurts the output most. Ties go by name.

Skip: a layer whose isolated SQNR is at least ``skip_db`` below the median layer's. Output noise
of independent layers roughly adds up, so with the default 6 dB such a layer alone adds 4x the
noise of a typical layer: leaving it in float buys the most fidelity per skipped layer. Layers
of a uniformly good model are not skipped, however many there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from qdqforge.front.analysis.doctor.fidelity import SQNR
from qdqforge.front.analysis.doctor.layer_report import LayerReport
from qdqforge.front.analysis.sensitivity import rank

DEFAULT_SKIP_DB = 6.0


def rank_layers(layers: Sequence[LayerReport]) -> list[str]:
    """Layer names, most sensitive (lowest isolated SQNR) first."""
    return rank({lr.name: lr.quantized.sqnr_db for lr in layers}, SQNR)


def choose_skips(layers: Sequence[LayerReport], skip_db: float = DEFAULT_SKIP_DB) -> list[str]:
    """Layers whose isolated SQNR is ``skip_db`` or more below the median, in rank order."""
    finite = [lr.quantized.sqnr_db for lr in layers if math.isfinite(lr.quantized.sqnr_db)]
    if not finite:
        return []
    threshold = float(np.median(finite)) - skip_db
    by_name = {lr.name: lr for lr in layers}
    return [name for name in rank_layers(layers) if by_name[name].quantized.sqnr_db <= threshold]
