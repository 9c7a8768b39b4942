"""A quantized layer's bias on the int32 grid, shared by the fake-quant and deploy models.

``B_q = round(B / (s_d * s_w))`` per output channel (round half to even), so the fake-quant model
(``DequantizeLinear(B_q, s_d * s_w)`` as the layer's bias) and the deploy model (``B_q`` added to
the int32 accumulator) hold the same bias value by construction (docs/amct.md §5). A ``B_q`` beyond
int32 means the scales are too small for the bias: a QuantizationError suggesting ``skip_layers``.

The bias is input 2 of Conv/ConvTranspose/Gemm, or the constant operand of the ``Add`` that is
the only consumer of a MatMul's output (a Linear on a 3-D input). ``s_d`` is an int8 grid's
scale: a layer with 16-bit activations keeps a float bias (``insert_qdq``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.errors import QuantizationError
from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LayerSite
from qdqforge.graph.naming import unique_name

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class LayerBias:
    """Where a layer's bias lives.

    Attributes:
        holder: the node that reads the bias (the layer, or the Add after a MatMul).
        index: input index of the bias in ``holder``.
        value: the bias values (1-D after ``reshape(-1)``).
    """

    holder: gs.Node
    index: int
    value: np.ndarray


def layer_bias(graph: Graph, node: gs.Node) -> LayerBias | bool | None:
    """The constant bias of layer ``node``; None without bias; False for a non-constant bias."""
    if node.op in ("Conv", "ConvTranspose", "Gemm"):
        if len(node.inputs) < 3 or node.inputs[2].name == "":
            return None
        value = query.constant_value(node.inputs[2])
        return False if value is None else LayerBias(node, 2, value.reshape(-1))
    if node.op != "MatMul":
        return None
    add = query.sole_consumer(node.outputs[0], graph.gs.outputs)
    if add is None or add.op != "Add" or len(add.inputs) != 2:
        return None
    index = 1 if add.inputs[0] is node.outputs[0] else 0
    value = query.constant_value(add.inputs[index])
    return None if value is None or value.ndim > 1 else LayerBias(add, index, value.reshape(-1))


def int32_bias(layer: str, bias: np.ndarray, dequant_scale: np.ndarray) -> np.ndarray:
    """``round(bias / dequant_scale)`` as int32, shaped like ``bias`` broadcast to the scale.

    Raises:
        QuantizationError: a value does not fit int32 (names the layer, suggests skip_layers).
    """
    scale = np.asarray(dequant_scale, np.float64).reshape(-1)
    exact = np.rint(
        np.broadcast_to(bias.astype(np.float64), np.broadcast(bias, scale).shape) / scale
    )
    worst = float(np.abs(exact).max(initial=0.0))
    if not np.isfinite(worst) or worst > INT32_MAX:
        raise QuantizationError(
            f"layer '{layer}': bias / (scale_d * scale_w) reaches {worst:.3g}, beyond int32: the "
            "weight or activation scale is too small for this bias. Add the layer to skip_layers "
            "in the quantization config"
        )
    return exact.astype(np.int32)


def dequantize_int32_bias(
    graph: Graph, site: LayerSite, bias: LayerBias, scale: np.ndarray, taken: set[str]
) -> None:
    """Make the layer read ``DequantizeLinear(B_q, s_d * s_w)`` (the fake-quant model's bias)."""
    q = int32_bias(site.name, bias.value, scale)
    axis = 0 if scale.size > 1 else None
    stored = gs.Constant(unique_name(f"{site.name}.bias_int32", taken), q)
    value = scale if axis is not None else scale.reshape(())
    zp = np.zeros(value.shape, np.int32)
    out = gs.Variable(unique_name(f"{site.name}.bias_dequant.out", taken), dtype=np.float32)
    zero = gs.Constant(unique_name(f"{site.name}.bias_dequant.offset", taken), zp)
    scale_c = gs.Constant(unique_name(f"{site.name}.bias_dequant.scale", taken), value)
    attrs = {} if axis is None else {"axis": axis}
    name = unique_name(f"{site.name}.bias_dequant", taken)
    node = gs.Node("DequantizeLinear", name, attrs, [stored, scale_c, zero], [out])
    graph.gs.nodes.append(node)
    graph.stamp(node, "insert_qdq", "bias_int32", [site.node])
    bias.holder.inputs[bias.index] = out
