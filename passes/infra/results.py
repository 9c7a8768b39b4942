"""Results one pass hands on to the code that runs the pipeline, as typed fields.

A pass that produces more than a rewritten graph writes it into a field of
:class:`~qdqforge.passes.infra.base.PassContext` typed here, never into an untyped dict, so the
reader (``front``) sees what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ArqWeightResults:
    """What ``arq_weights`` hands on, per layer it quantized.

    Attributes:
        scale_w: ARQ's weight scales (one, or one per output channel) for the record.
        ada_float_weights: the float weight of each ``ada_quantize`` layer, before ARQ: AdaRound
            learns its rounding from it after calibration.
    """

    scale_w: dict[str, tuple[float, ...]] = field(default_factory=dict)
    ada_float_weights: dict[str, np.ndarray] = field(default_factory=dict)
