"""What ``integer_layers`` needs to run one layer on integers: int8 weight, bias, scales, output.

``W_q`` (:mod:`qdqforge.passes.grids.weight_grid`: int8, or the 4-bit grid for INT4) with ``s_w``
per output channel (Conv axis 0, Linear ``[Cout, Cin]`` axis 0, MatMul ``[Cin, Cout]`` axis 1) or
one per tensor. Linear weights are stored transposed for
MatMulInteger. The dequant scale ``s_d * s_w`` is shaped to broadcast over the layer output
(``[Cout, 1, ...]`` for conv, ``[Cout]`` for MatMul). A layer with 16-bit activations has no
integer form: ConvInteger/MatMulInteger take int8/uint8 inputs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import PassError
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite
from qdqforge.passes.grids.act_grid import act_bits
from qdqforge.passes.grids.bias_int32 import layer_bias
from qdqforge.passes.grids.weight_grid import weight_integers

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


@dataclass(frozen=True)
class IntegerLayer:
    """One layer ready for its integer rewrite (see module docstring)."""

    site: LayerSite
    integer_op: str
    attrs: dict
    weight_q: np.ndarray
    bias: np.ndarray | None
    scale_d: np.ndarray
    offset_d: int
    dequant_scale: np.ndarray
    output_node: gs.Node
    output: gs.Tensor


def has_integer_form(graph: Graph, site: LayerSite | None, rec) -> bool:
    """True when :func:`integer_layer` gives the layer an :class:`IntegerLayer` (its integers
    are not computed here)."""
    return _integer_bias(graph, site, rec) is not False


def _integer_bias(graph: Graph, site: LayerSite | None, rec):
    """The layer's bias (``bias_int32.layer_bias``: None when it has none), or False when the
    layer has no integer form."""
    if site is None or site.weight is None or not rec.scale_w or rec.scale_d is None:
        return False
    if act_bits(rec) != 8:
        return False
    node = site.node
    if node.op == "Gemm" and not _plain_gemm(node):
        return False
    if node.op not in ("Conv", "Gemm", "MatMul"):
        return False
    return layer_bias(graph, node)


def integer_layer(graph: Graph, site: LayerSite | None, rec) -> IntegerLayer | None:
    """The :class:`IntegerLayer` of ``site``, or None when it has no integer form."""
    bias = _integer_bias(graph, site, rec)
    if bias is False:
        return None
    node = site.node
    output_node = node if bias is None else bias.holder
    weight_q, channels = _weight_int8(site, np.asarray(rec.scale_w, np.float32), rec)
    scale_d = np.float32(rec.scale_d)
    dequant = np.broadcast_to(scale_d * np.asarray(rec.scale_w, np.float32), (channels,))
    if node.op == "Conv":
        dequant = dequant.reshape((channels,) + (1,) * (weight_q.ndim - 2))
        attrs = {k: v for k, v in node.attrs.items() if k in CONV_ATTRS}
    else:
        attrs = {}
    op = "ConvInteger" if node.op == "Conv" else "MatMulInteger"
    bias = None if bias is None else np.broadcast_to(bias.value, (channels,))
    return IntegerLayer(
        site, op, attrs, weight_q, bias, np.asarray(scale_d), int(rec.offset_d or 0),
        np.ascontiguousarray(dequant, np.float32), output_node, output_node.outputs[0],
    )  # fmt: skip


def _plain_gemm(node: gs.Node) -> bool:
    attrs = node.attrs
    plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
    return plain and not attrs.get("transA", 0)


def _weight_int8(site: LayerSite, scale_w: np.ndarray, rec) -> tuple[np.ndarray, int]:
    w = np.asarray(site.weight.values, np.float32)
    axis = WEIGHT_AXIS[site.weight_layout]
    channels = w.shape[axis]
    if scale_w.size not in (1, channels):
        raise PassError(
            f"integer_layers: layer '{site.name}' has {scale_w.size} scale_w values for "
            f"{channels} output channels"
        )
    q = weight_integers(w, scale_w, axis, rec, transposed=site.weight_layout == "Linear")
    return q, channels
