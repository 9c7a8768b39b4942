"""Which layer types are quantizable, and their defaults (docs/amct.md §2.1, §4.7).

Layer types are torch class names, as AMCT's ``.cfg`` ``layer_type`` uses them; ``"MatMul"`` is
our extension: a MatMul between two activations (attention scores), keyed
``"<module>.matmul_<k>"`` and off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

MATMUL = "MatMul"
PTQ_TYPES = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "Linear",
    "AvgPool2d",
    MATMUL,
)
QAT_TYPES = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "Linear", MATMUL)
CONV_TYPES = frozenset(t for t in PTQ_TYPES if t.startswith("Conv"))
# AMCT: channel_wise defaults to true for these and is illegal (true) for every other type.
CHANNEL_WISE_TYPES = CONV_TYPES
WEIGHTLESS_TYPES = frozenset({"AvgPool2d", MATMUL})
# Types enabled by default; MatMul between activations goes beyond AMCT and must be asked for.
DEFAULT_ON = frozenset(t for t in PTQ_TYPES if t != MATMUL)
# 6/7-bit weights are a Conv2d-only option in AMCT; 4-bit is our extension for every weight.
WEIGHT_BITS = (8, 4)
CONV2D_EXTRA_BITS = (6, 7)


def has_weights(layer_type: str | None) -> bool | None:
    """True/False for a known type; None when the type is unknown."""
    if layer_type is None:
        return None
    return layer_type not in WEIGHTLESS_TYPES


def default_channel_wise(layer_type: str) -> bool:
    """AMCT default: per-channel weight scales for convolutions, per-tensor otherwise."""
    return layer_type in CHANNEL_WISE_TYPES


def weight_bits_allowed(layer_type: str | None) -> tuple[int, ...]:
    """Weight ``num_bits`` values allowed for ``layer_type`` (all of them when unknown)."""
    if layer_type in (None, "Conv2d"):
        return (*WEIGHT_BITS, *CONV2D_EXTRA_BITS)
    return WEIGHT_BITS


@dataclass(frozen=True)
class QuantLayer:
    """One quantizable layer found in a model.

    Attributes:
        name: torch qualified module name (``"layer1.0.conv1"``), or ``"<module>.matmul_<k>"``.
        layer_type: torch class name (``"Conv2d"``) or ``"MatMul"``.
        nodes: names of the ONNX nodes that implement it in the exported graph.
        sharing: why the layer cannot be quantized on its own (``"called 2 times"``,
            ``"shares its weight with fc2"``); ``None`` when it is not shared.
    """

    name: str
    layer_type: str
    nodes: tuple[str, ...] = ()
    sharing: str | None = None
