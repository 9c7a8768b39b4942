"""A config with no layer enabled is refused up front, saying why each layer is off.

When every layer shares its weights (or is switched off), calibration has nothing to observe
and ``save_model`` used to blame the calibration batches ("calibration saw 2 of batch_num=2
batches, so layer(s) (all) have no scale_d"). ``quantize_model`` and
``create_quant_retrain_model`` now stop right after loading the config, before anything is
written, with one ConfigError naming every layer and its reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from qdqforge.errors import ConfigError
from qdqforge.front.config.layer_types import QuantLayer


def require_enabled(
    config, layers: Sequence[QuantLayer], source: str | os.PathLike, flag: str, call: str
) -> None:
    """Raise when no layer of ``config`` has ``flag`` (``quant_enable``/``retrain_enable``) set.

    Raises:
        ConfigError: names the call, the config and why each layer is off (weight sharing,
            or the flag set false in the config).
    """
    if any(getattr(item, flag) for item in config.layers):
        return
    sharing = {layer.name: layer.sharing for layer in layers if layer.sharing}
    reasons = [
        f"{item.name} ({sharing[item.name]}: weight sharing cannot be quantized)"
        if item.name in sharing
        else f"{item.name} ({flag}: false)"
        for item in config.layers
    ]
    listed = "; ".join(reasons) if reasons else "the model has no quantizable layer"
    raise ConfigError(
        f"{call}: no layer is enabled in {os.fspath(source)}, so there is nothing to "
        f"quantize: {listed}"
    )
