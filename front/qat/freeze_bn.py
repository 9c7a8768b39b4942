"""``freeze_bn_stats``: the QAT recipe switch that stops BatchNorm statistics from moving.

A QAT model keeps its BatchNorm unfolded (batch statistics in ``train()``, running statistics
updated with torch's momentum), as the float model trained. Late in fine-tuning, or when
fine-tuning an already converged model, that update is noise: the running statistics drift to
the last few batches and the eval accuracy moves with them even at learning rate 0 (bench/qat.py
measures it on digits). Freezing them, as torch.ao's ``freeze_bn_stats`` and TF's QAT recipes
do, normalizes training forwards with the running statistics instead; gamma/beta still train and
the save folds exactly the statistics the model trained with.
"""

from __future__ import annotations

import logging

from torch import nn

from qdqforge.errors import ModelError
from qdqforge.runtime.modules.batchnorm import BatchNormOp

logger = logging.getLogger(__name__)


def freeze_bn_stats(model: nn.Module, freeze: bool = True) -> int:
    """Freeze (or, with ``freeze=False``, unfreeze) every BatchNorm of a qdqforge module.

    Args:
        model: a module returned by ``create_quant_retrain_model`` /
            ``restore_quant_retrain_model`` (or ``quantize_model``, ``reimport``); it may be
            wrapped in ``DistributedDataParallel``/``DataParallel``.
        freeze: True: training forwards use the running statistics and do not update them.

    Returns:
        How many BatchNorm ops were switched (0 when the model has none; logged).

    Raises:
        ModelError: ``model`` holds ``torch.nn`` BatchNorm layers, i.e. it is the user's float
            model, not a qdqforge module (put those in ``eval()`` yourself).
    """
    ops = [m for m in model.modules() if isinstance(m, BatchNormOp)]
    plain = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    if plain and not ops:
        raise ModelError(
            f"freeze_bn_stats: {plain[0]!r} is a torch.nn BatchNorm; pass the module returned by "
            "create_quant_retrain_model, not the float model"
        )
    for op in ops:
        op.stats_frozen = freeze
    if not ops:
        logger.info("freeze_bn_stats: the model has no BatchNorm")
    return len(ops)
