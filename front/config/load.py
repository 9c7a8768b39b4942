"""Load either JSON config (PTQ or QAT), telling them apart by their keys.

A QAT config has ``retrain_*`` keys in its layer entries; everything else is read as PTQ (whose
layers have ``quant_enable``/``*_quant_params`` and whose globals include ``activation_offset``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from qdqforge.front.config.jsonio import read_json
from qdqforge.front.config.layer_types import QuantLayer
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.config.ptq_load import quant_config_from_dict
from qdqforge.front.config.qat import RetrainConfig
from qdqforge.front.config.qat_load import retrain_config_from_dict

QAT_LAYER_KEYS = frozenset({"retrain_enable", "retrain_data_config", "retrain_weight_config"})


def load_config(
    path: str | os.PathLike,
    model=None,
    input_data=None,
    layers: Sequence[QuantLayer] | None = None,
) -> QuantConfig | RetrainConfig:
    """Load a PTQ or QAT JSON config, validated against the model when one is given.

    Args:
        path: JSON config file.
        model: optional torch model; with ``input_data`` it is exported to find its layers.
        input_data: example input for ``model``.
        layers: the model's quantizable layers, if already known (takes precedence).

    Returns:
        A QuantConfig (PTQ) or RetrainConfig (QAT).

    Raises:
        ConfigError: every violation of the file.
    """
    tree = read_json(path)
    if layers is None and model is not None:
        from qdqforge.front.config.layers import find_quant_layers  # imports torch

        layers = find_quant_layers(model, input_data)
    if is_retrain_tree(tree):
        return retrain_config_from_dict(tree, os.fspath(path), layers)
    return quant_config_from_dict(tree, os.fspath(path), layers)


def is_retrain_tree(tree: Mapping) -> bool:
    """True when some layer entry of ``tree`` uses QAT keys."""
    return any(isinstance(v, Mapping) and QAT_LAYER_KEYS & set(v) for v in tree.values())
