"""The prelude of every public call that takes a model: one definition of the steps before a flow.

    input_data -> normalize_input_data   a tuple of tensors, else InputDataError
               -> refuse_non_float32     float64/float16/bfloat16 weights or inputs: ModelError
               -> export                 the ONNX graph (ExportError)
               -> quant layers           quantizable layers confirmed in that graph
               -> load config            the JSON config checked against those layers

:func:`checked_inputs` is the first two steps (for a call that exports later, in another call),
:func:`run_prelude` all five; both name the public call in their errors. Nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx
import torch
from torch import nn

from qdqforge.front.config.layer_types import QuantLayer
from qdqforge.front.config.layers import quant_layers_from_graph
from qdqforge.front.entry.inputs import normalize_input_data
from qdqforge.front.entry.model_dtype import refuse_non_float32
from qdqforge.front.export.to_onnx import export_held
from qdqforge.graph.held_arrays import Held

ConfigLoader = Callable[[str | os.PathLike, list[QuantLayer] | None], Any]


@dataclass(frozen=True)
class Prelude:
    """What a public call starts from.

    Attributes:
        inputs: ``input_data`` as a tuple of float32 (or integer) tensors.
        proto: the exported ONNX graph of the model; on an export-cache hit its large weights
            are held as arrays (``weights``: :func:`~qdqforge.front.export.to_onnx.export_held`),
            which ``io.from_proto`` gives to the graph.
        layers: the quantizable layers found in it, in graph order.
        config: the config loaded against ``layers`` (None when no config file was given).
        weights: the held weights of ``proto`` (kept alive with it).
    """

    inputs: tuple[torch.Tensor, ...]
    proto: onnx.ModelProto
    layers: list[QuantLayer]
    config: Any = None
    weights: Held | None = None


def checked_inputs(api: str, model: nn.Module, input_data) -> tuple[torch.Tensor, ...]:
    """``input_data`` as a tuple of tensors, refused with the model when not float32.

    Raises:
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (named, with ``api``).
    """
    inputs = normalize_input_data(input_data)
    refuse_non_float32(model, inputs, api)
    return inputs


def run_prelude(
    api: str,
    model: nn.Module,
    input_data,
    config_file: str | os.PathLike | None = None,
    load_config: ConfigLoader | None = None,
    *,
    config_first: bool = False,
) -> Prelude:
    """Check the inputs, export ``model``, find its layers and load ``config_file`` against them.

    Args:
        api: the public call, as errors name it.
        model: the float torch model (not modified).
        input_data: a tensor or a tuple of tensors.
        config_file: the JSON config, or None (no config loaded).
        load_config: ``load_quant_config`` or ``load_retrain_config``.
        config_first: also load the config without layers before exporting, so that a bad
            file fails in milliseconds rather than after the export (seconds).

    Raises:
        InputDataError, ModelError: see :func:`checked_inputs` (before anything is exported).
        ExportError: the model cannot be exported.
        ConfigError: the config is invalid for these layers (every violation listed).
    """
    inputs = checked_inputs(api, model, input_data)
    if config_first and config_file is not None:
        load_config(config_file, None)
    held = export_held(model, inputs)
    layers = quant_layers_from_graph(model, held.model)
    config = None if config_file is None else load_config(config_file, layers)
    return Prelude(inputs, held.model, layers, config, held)
