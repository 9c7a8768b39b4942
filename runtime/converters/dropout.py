"""Dropout -> ``nn.Dropout(p)``: active in ``train()``, identity in ``eval()``.

The node's ``training_mode`` input is ignored on purpose: exporters write it as a constant, and
the reimported model must follow ``module.train()`` like the original.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from qdqforge.errors import ConversionError
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


@converter("Dropout", versions=(7, 10, 12, 13))
def convert_dropout(node: OnnxNode, emit: Emitter):
    # The mask output (TorchScript exports always name it) is left unproduced; reading it fails.
    ratio = node.attr("ratio", 0.5)
    if "ratio" not in node.attrs and emit.has(1):
        const = emit.const(1)
        if const is None:
            raise ConversionError(f"Dropout node {node.name!r}: ratio must be a constant")
        # float32 0.1 -> 0.1, so the Bernoulli masks equal the original module's (same seed)
        ratio = float(str(const.reshape(()))) if const.dtype == np.float32 else float(const)
    return emit.module(nn.Dropout(float(ratio)), emit.value(0))
