"""Grouped ConvTranspose weights cannot be quantized per output channel in ONNX QDQ.

A ConvTranspose weight is ``[Cin, Cout/g, k...]``; output channel ``o = gi * Cout/g + j`` lives
at ``W[gi*Cin/g : (gi+1)*Cin/g, j]``. With ``g > 1`` no single weight axis carries ``o``, and
DequantizeLinear's per-axis scale needs one, so ``save_model`` / ``save_quant_retrain_model``
could not write such a layer. Both flows therefore check it before any work is done:

* configs written without a ``.cfg`` (pure defaults) quantize these layers per tensor;
* a config that asks for ``channel_wise: true`` on one is a ConfigError at ``quantize_model`` /
  ``create_quant_retrain_model``, naming the layer and the fix.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from qdqforge.errors import ConfigError


def grouped_transposes(model: nn.Module) -> dict[str, int]:
    """``{module name: groups}`` of the model's ConvTranspose modules with ``groups > 1``."""
    return {
        name: module.groups
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvTransposeNd) and module.groups > 1
    }


def _weight_field(layer) -> str:
    return (
        "weight_quant_params"
        if hasattr(layer, "weight_quant_params")
        else ("retrain_weight_config")
    )


def per_tensor_defaults(config, model: nn.Module):
    """``config`` (PTQ or QAT) with grouped ConvTranspose layers' weights per tensor."""
    grouped = grouped_transposes(model)
    layers = []
    for layer in config.layers:
        weight = getattr(layer, _weight_field(layer))
        if layer.name in grouped and weight is not None and weight.channel_wise:
            weight = dataclasses.replace(weight, channel_wise=False)
            layer = dataclasses.replace(layer, **{_weight_field(layer): weight})
        layers.append(layer)
    return dataclasses.replace(config, layers=tuple(layers))


def refuse_channel_wise(config, model: nn.Module) -> None:
    """Raise when an enabled grouped ConvTranspose layer asks for per-channel weights.

    Raises:
        ConfigError: naming the first such layer, its groups and the setting to change.
    """
    grouped = grouped_transposes(model)
    for layer in config.layers:
        enabled = getattr(layer, "quant_enable", getattr(layer, "retrain_enable", True))
        weight = getattr(layer, _weight_field(layer))
        if layer.name in grouped and enabled and weight is not None and weight.channel_wise:
            raise ConfigError(
                f"layer '{layer.name}': a ConvTranspose with groups={grouped[layer.name]} cannot "
                "have per-channel weight scales in ONNX QDQ (its output channels do not lie on "
                f"one weight axis); set {_weight_field(layer)}.channel_wise to false for it "
                "(.cfg: channel_wise: false in its override), or skip the layer"
            )
