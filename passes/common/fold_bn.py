"""fold_bn: fold an inference BatchNormalization into the Conv/ConvTranspose/Gemm that feeds it.

Before / after::

    x -> Conv(W, B) -> BatchNormalization(gamma, beta, mean, var, eps) -> y
    x -> Conv(W', B') -> y

Math, per output channel c, with s_c = gamma_c / sqrt(var_c + eps)::

    W'[c] = W[c] * s_c            (Conv: axis 0; ConvTranspose: axis 1 within each group;
                                   Gemm: the output-column axis of B)
    B'_c  = (B_c - mean_c) * s_c + beta_c          (B = 0 when absent; Gemm: B = beta_gemm * C)

Applies only when the layer's output feeds the BN alone, every BN operand is constant and the
BN has a single output (inference mode). Layers named in ``FoldBnOptions.skip_layers`` (torch module
names, AMCT's ``skip_fusion_layers``) are left alone. Folded tensors get new names
(``<layer>.folded_weight``/``folded_bias``) so a name never means two different values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from qdqforge.graph import query
from qdqforge.graph.ir import Graph
from qdqforge.graph.naming import taken_names, unique_name
from qdqforge.graph.toposort import toposort
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass

FOLDABLE = ("Conv", "ConvTranspose", "Gemm")


@dataclass(frozen=True)
class FoldBnOptions:
    """``skip_layers``: torch module names whose BN stays (AMCT's ``skip_fusion_layers``)."""

    skip_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip_layers", tuple(self.skip_layers))


@register_pass
class FoldBatchNormPass(GraphPass[FoldBnOptions], name="fold_bn"):
    """Fold inference BatchNormalization into the preceding Conv/ConvTranspose/Gemm."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        skip = set(self.options.skip_layers)
        stats = {"bn_folded": 0, "skipped_by_config": 0, "not_foldable": 0}
        taken = taken_names(graph)
        for bn in [n for n in graph.gs.nodes if n.op == "BatchNormalization"]:
            layer = _foldable_layer(graph, bn)
            if layer is None:
                stats["not_foldable"] += 1
            elif graph.module_of(layer) in skip:
                stats["skipped_by_config"] += 1
            else:
                _fold(graph, layer, bn, taken)
                stats["bn_folded"] += 1
        graph.gs.cleanup(remove_unused_graph_inputs=False)
        toposort(graph)
        return PassResult(graph, stats["bn_folded"] > 0, stats)


def _foldable_layer(graph: Graph, bn: gs.Node) -> gs.Node | None:
    layer = query.producer(bn.inputs[0])
    if layer is None or layer.op not in FOLDABLE or len(bn.outputs) != 1:
        return None
    if query.sole_consumer(layer.outputs[0], graph.gs.outputs) is not bn:
        return None
    if not all(isinstance(t, gs.Constant) for t in bn.inputs[1:5]):
        return None
    if not isinstance(layer.inputs[1], gs.Constant):
        return None
    if layer.op == "Gemm" and not _gemm_foldable(layer, bn.inputs[1].values.size):
        return None
    return layer


def _gemm_foldable(gemm: gs.Node, channels: int) -> bool:
    """No transposed A, and a constant per-column (or absent) C."""
    if gemm.attrs.get("transA", 0):
        return False
    if len(gemm.inputs) < 3 or not gemm.inputs[2].name:
        return True
    bias = gemm.inputs[2]
    return isinstance(bias, gs.Constant) and np.asarray(bias.values).size in (1, channels)


def _bn_scale_shift(bn: gs.Node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gamma, beta, mean, var = (np.asarray(t.values, np.float64) for t in bn.inputs[1:5])
    scale = gamma / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
    return scale, beta, mean


def _fold(graph: Graph, layer: gs.Node, bn: gs.Node, taken: set[str]) -> None:
    scale, beta, mean = _bn_scale_shift(bn)
    weight = np.asarray(layer.inputs[1].values)
    bias = _layer_bias(layer, scale.size)
    new_w = _scale_weight(layer, weight, scale)
    new_b = ((bias - mean) * scale + beta).astype(weight.dtype)
    prefix = _prefix(layer.inputs[1].name)
    w_const = gs.Constant(unique_name(f"{prefix}.folded_weight", taken), new_w)
    b_const = gs.Constant(unique_name(f"{prefix}.folded_bias", taken), new_b)
    while len(layer.inputs) > 1:
        layer.inputs.pop()
    layer.inputs.extend([w_const, b_const])
    if layer.op == "Gemm":
        layer.attrs["beta"] = 1.0
    graph.add_parameters([w_const.name, b_const.name])
    bn_out = bn.outputs[0]
    bn.outputs.clear()
    layer.outputs.clear()
    layer.outputs.append(bn_out)
    graph.stamp(layer, "fold_bn", "fold_into_" + layer.op.lower(), [layer, bn], "replace")


def _layer_bias(layer: gs.Node, channels: int) -> np.ndarray:
    if len(layer.inputs) < 3 or not layer.inputs[2].name:
        return np.zeros(channels)
    bias = np.asarray(layer.inputs[2].values, np.float64)
    if layer.op == "Gemm":
        bias = layer.attrs.get("beta", 1.0) * np.broadcast_to(bias, (1, channels)).reshape(-1)
    return bias


def _scale_weight(layer: gs.Node, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``W * s`` per output channel, computed in float64 and rounded once to ``W``'s dtype,
    through the ufunc's small buffers (no float64 copy of the weight and of the product)."""
    folded = np.empty_like(weight)
    if layer.op == "Conv":
        per = scale.reshape(-1, *[1] * (weight.ndim - 1))
    elif layer.op == "Gemm":
        per = scale[:, None] if layer.attrs.get("transB", 0) else scale[None, :]
    else:
        groups = layer.attrs.get("group", 1)
        cin, cout_g = weight.shape[:2]
        shape = (groups, cin // groups, cout_g, *weight.shape[2:])
        per = scale.reshape(groups, 1, cout_g, *[1] * (weight.ndim - 2))
        weight, folded_view = weight.reshape(shape), folded.reshape(shape)
        np.multiply(weight, per, out=folded_view, dtype=np.float64, casting="unsafe")
        return folded
    np.multiply(weight, per, out=folded, dtype=np.float64, casting="unsafe")
    return folded


def _prefix(weight_name: str) -> str:
    return weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name
