"""Catalogue rows: ``.cfg`` files (protobuf text) and create_quant_config arguments.

Every row goes through the public creator; the message must name the line (syntax errors) or
the ``.cfg`` field path.
"""

from __future__ import annotations

import torch

import qdqforge
from qdqforge.errors import ConfigError
from tests.reliability.catalogue import Case


def _create(cfg_text: str, retrain: bool = False):
    def call(w):
        cfg = w.write("def.cfg", cfg_text)
        out = str(w.tmp / "out.json")
        if retrain:
            return qdqforge.create_quant_retrain_config(out, w.model, w.x, config_defination=cfg)
        return qdqforge.create_quant_config(out, w.model, w.x, config_defination=str(cfg))

    return call


def _cfg(name: str, text: str, match: str, what: str, retrain: bool = False) -> Case:
    return Case(f"cfg:{name}", what, _create(text, retrain), ConfigError, match)


def _args(name: str, match: str, what: str, **kwargs) -> Case:
    def call(w):
        return qdqforge.create_quant_config(str(w.tmp / "out.json"), w.model, w.x, **kwargs)

    return Case(f"args:{name}", what, call, ConfigError, match)


def _odd_names(w):
    """A ModuleDict key with '/' and one with '"' (dynamo fails, TorchScript's scopes split on
    '/'): skip_layers' did-you-mean can only offer them when both map to their layers."""
    from tests.helpers.module_name_models import Blocks

    model = Blocks(["x/y", 'a"b']).eval()
    return qdqforge.create_quant_config(
        str(w.tmp / "c.json"), model, torch.randn(2, 4), skip_layers=["blocks.x/z"]
    )


OVERRIDE = 'override_layer_configs {{ layer_name: "{}" calibration_config {{ {} }} }}\n'
CASES = [
    _cfg(
        "unbalanced-brace",
        "batch_num: 2\ncommon_config {\n",
        'def.cfg:2:15: Expected "}"',
        "a '{' never closed",
    ),
    _cfg("unknown-field", "batch_nun: 2\n", 'no field named "batch_nun"', "a misspelt field"),
    _cfg("wrong-type", 'batch_num: "two"\n', "def.cfg:1:", "a string where an int goes"),
    _cfg("negative-uint", "batch_num: -1\n", "def.cfg:1:", "a negative batch_num"),
    _cfg(
        "out-of-range",
        "common_config { dmq_balancer { migration_strength: 0.9 } }\n",
        "common_config.dmq_balancer.migration_strength: got 0.9",
        "DMQ strength outside [0.2, 0.8]",
    ),
    _cfg(
        "duplicate-layer",
        OVERRIDE.format("conv", "") * 2,
        "override_layer_configs[1]",
        "the same layer overridden twice",
    ),
    _cfg(
        "unknown-layer",
        OVERRIDE.format("convv", ""),
        "unknown layer 'convv'; did you mean 'conv'",
        "an override for a layer the model lacks",
    ),
    _cfg(
        "ifmr-and-hfmg",
        OVERRIDE.format("conv", "ifmr_quantize { search_step: 0.01 } hfmg_quantize { }"),
        "hfmg_quantize",
        "IFMR and HFMG both set for one layer",
    ),
    _cfg(
        "hfmg-bins",
        OVERRIDE.format("conv", "hfmg_quantize { num_of_bins: 1000 }"),
        "override_layer_configs[conv].calibration_config.hfmg_quantize.num_of_bins: got 1000",
        "HFMG bins not a power of two in range",
    ),
    _cfg(
        "retrain-clip",
        'override_layer_configs { layer_name: "conv" retrain_data_quant_config { ulq_quantize '
        "{ clip_max_min { clip_max: -1 clip_min: 1 } } } }\n",
        "clip_max",
        "ULQ clip_max below zero",
        retrain=True,
    ),
    _args("skip-unknown", "skip_layers[0]", "skip_layers names a missing layer", skip_layers=["x"]),
    _args("batch-num-zero", "batch_num: got 0", "batch_num=0", batch_num=0),
    _args("skip-str", "skip_layers: got 'conv'", "skip_layers as a str", skip_layers="conv"),
    Case(
        "args:skip-near-odd-name",
        "skip_layers misspelling a layer whose name holds '/' beside one holding '\"'",
        _odd_names,
        ConfigError,
        "skip_layers[0]: unknown layer 'blocks.x/z'; did you mean 'blocks.x/y'",
    ),
]
