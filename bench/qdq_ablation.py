"""Error attribution on a saved QDQ ONNX: take activation Q/DQ pairs out, layer by layer.

qdqforge's QDQ model (``<save>_qdq_model.onnx``; the fake-quant model has no Q/DQ since issue 14)
quantizes each layer input with a ``<layer>.quant`` QuantizeLinear followed by a
DequantizeLinear. Removing such a pair (its consumers read the float tensor again)
leaves that activation float while every weight stays on its int8 grid. Two uses:

* all pairs removed: the weight-only error (what activations add is the rest);
* only one layer's pair kept: that layer's own activation-rounding error, to rank layers.
"""

from __future__ import annotations

import onnx


def _activation_quantizers(proto: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """``{layer: its activation QuantizeLinear}`` (weight quantizers read an initializer)."""
    inits = {i.name for i in proto.graph.initializer}
    return {
        n.name.removesuffix(".quant"): n
        for n in proto.graph.node
        if n.op_type == "QuantizeLinear" and n.name.endswith(".quant") and n.input[0] not in inits
    }


def activation_layers(proto: onnx.ModelProto) -> list[str]:
    """Layers whose input has an activation Q/DQ pair, in graph order."""
    return list(_activation_quantizers(proto))


def without_activation_qdq(proto: onnx.ModelProto, layers) -> onnx.ModelProto:
    """A copy of ``proto`` without the activation Q/DQ pairs of ``layers``."""
    chosen = {k: q for k, q in _activation_quantizers(proto).items() if k in set(layers)}
    float_of = {q.output[0]: q.input[0] for q in chosen.values()}  # quantized -> float tensor
    bypass = {
        n.output[0]: float_of[n.input[0]]
        for n in proto.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in float_of
    }
    dropped = {q.name for q in chosen.values()}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    for node in proto.graph.node:
        if node.name in dropped or (
            node.op_type == "DequantizeLinear" and node.output[0] in bypass
        ):
            continue
        kept = out.graph.node.add()
        kept.CopyFrom(node)
        kept.input[:] = [bypass.get(name, name) for name in node.input]
    return out


def only_activation_qdq(proto: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """A copy of ``proto`` keeping the activation Q/DQ pair of ``layer`` only."""
    return without_activation_qdq(proto, [k for k in activation_layers(proto) if k != layer])
