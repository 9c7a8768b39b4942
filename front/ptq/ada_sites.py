"""The ``ada_quantize`` layers of a modified graph: float weight, ARQ scale and input geometry.

``quantize_model`` builds one :class:`AdaLayer` per enabled layer whose ``wts_algo`` is
``ada_quantize`` from the modified graph (after ``arq_weights``), before writing anything, so a
layer AdaRound cannot handle is a ConfigError up front. Supported: Conv (1d/2d/3d, grouped,
depthwise) and ConvTranspose with explicit ``pads`` (what torch exports), Linear/Gemm and MatMul
with a constant weight. ``auto_pad`` SAME_* or a ConvTranspose ``output_shape`` would make the
rows depend on the input size at run time: refused, naming the layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from qdqforge.errors import ConfigError
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite, layer_site
from qdqforge.passes.infra.results import ArqWeightResults
from qdqforge.runtime.calibration.adaround import AdaRoundParams
from qdqforge.runtime.calibration.layer_gram import GramAccumulator, RowGeometry

log = logging.getLogger(__name__)


@dataclass
class AdaLayer:
    """One AdaRound layer: what to round, on which grid, and its input statistics.

    Attributes:
        name: torch layer name.
        params: iterations, regularizer, beta schedule, warm start, bits.
        weight: float weight (BN folded, DMQ balanced) in the stored layout.
        scale: ARQ's ``scale_w`` (``[C]`` or ``[1]``).
        axis: output-channel axis of the stored weight; ``groups``: ConvTranspose groups.
        constant: name of the weight initializer (``<weight>.arq``).
        gram: the layer input's Gram accumulator; ``batches``: forwards fed to it.
    """

    name: str
    params: AdaRoundParams
    weight: torch.Tensor
    scale: torch.Tensor
    axis: int
    groups: int
    constant: str
    gram: GramAccumulator
    batches: int = 0


def ada_layers(graph: Graph, config: QuantConfig, arq: ArqWeightResults) -> list[AdaLayer]:
    """The AdaRound layers of the graph ``arq_weights`` produced (``arq``: what it handed on).

    Raises:
        ConfigError: an ``ada_quantize`` layer whose node AdaRound cannot take (named).
    """
    floats, scales = arq.ada_float_weights, arq.scale_w
    out = []
    for layer in config.layers:
        if layer.name not in floats:
            continue
        site = layer_site(graph, layer.name)
        w = layer.weight_quant_params
        params = AdaRoundParams(
            w.num_iteration,
            w.reg_param,
            tuple(w.beta_range),
            w.warm_start,
            config.weight_bits(layer),
        )
        groups = site.groups if site.weight_layout == "ConvTranspose" else 1
        out.append(
            AdaLayer(
                layer.name, params, torch.from_numpy(np.asarray(floats[layer.name])),
                torch.tensor(scales[layer.name], dtype=torch.float32),
                WEIGHT_AXIS[site.weight_layout], groups, site.weight.name,
                GramAccumulator(row_geometry(site)),
            )
        )  # fmt: skip
    return out


def row_geometry(site: LayerSite) -> RowGeometry:
    """How ``site`` turns its input into rows (``kernels.layer_gram``).

    Raises:
        ConfigError: ``auto_pad`` SAME_* or ConvTranspose ``output_shape``.
    """
    node = site.node
    if node.op in ("Gemm", "MatMul"):
        return RowGeometry("dense", trans_a=bool(node.attrs.get("transA", 0)))
    kernel = tuple(int(k) for k in np.asarray(site.weight.values).shape[2:])
    n = len(kernel)
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID") or node.attrs.get("output_shape"):
        what = f"auto_pad {auto_pad}" if auto_pad not in ("NOTSET", "VALID") else "output_shape"
        raise ConfigError(
            f"layer '{site.name}': ada_quantize needs a {node.op} with explicit pads, this one "
            f"has {what}; use arq_quantize for it (override_layer_configs) or skip it"
        )
    pads = node.attrs.get("pads") if auto_pad == "NOTSET" else None
    return RowGeometry(
        "conv" if node.op == "Conv" else "conv_transpose",
        int(node.attrs.get("group", 1)),
        kernel,
        tuple(node.attrs.get("strides") or (1,) * n),
        tuple(pads or (0,) * 2 * n),
        tuple(node.attrs.get("dilations") or (1,) * n),
        tuple(node.attrs.get("output_padding") or (0,) * n),
    )


def warn_rounded_like_arq(config: QuantConfig, tool: str) -> list[str]:
    """Log that ``tool`` (the doctor, auto-calibration's ranking) rounds ``ada_quantize`` layers'
    weights to nearest on ARQ's grid: AdaRound's rounding needs ``quantize_model``'s
    calibration, so their weight error there is an upper bound. Returns those layers."""
    names = [
        c.name
        for c in config.layers
        if c.quant_enable
        and c.weight_quant_params is not None
        and c.weight_quant_params.wts_algo == "ada_quantize"
    ]
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        log.warning(
            "%s: %d ada_quantize layer(s) (%s) are measured with ARQ's round-to-nearest weights, "
            "not AdaRound's (learnt in quantize_model's calibration): their weight error here "
            "is an upper bound",
            tool, len(names), shown,
        )  # fmt: skip
    return names
