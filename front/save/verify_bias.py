"""The QDQ model's int32 bias: checked on its own, and its effect measured apart.

The torch module and the fake-quant model add each layer's bias ``b`` in float; the QDQ and
deploy models add it in int32 on the grid of the layer's accumulator (AMCT's format)::

    q_b[c] = round(b[c] / (s_d * s_w[c])),   DequantizeLinear(q_b, scale_b) with scale_b = s_d * s_w

Judged (a fault fails the save): every int32 bias is on its layer's grid, ``scale_b[c]`` equal to
the product of the scales of the layer's activation and weight DequantizeLinear (to float32
rounding) and ``|q_b[c] * scale_b[c] - b[c]| <= scale_b[c] / 2``; and the rest of the QDQ model,
compared with the fake-quant model forced with the fake-quant model's float biases fed in at the
bias DequantizeLinear outputs (:func:`float_bias_feeds`; budget: :mod:`.verify_budget`).

Measured, not judged: the int32 rounding itself (``fake_quant_vs_qdq_bias``: the QDQ model's own
biases). Each bias moves by at most half a step of ``s_d * s_w[c]``; where a channel's weights
are large that step is coarse beside the next quantizer's step and moves integers by several
steps. Measured: EfficientNet-Lite0 after QAT set-up, BN-folded depthwise channels with
``s_d * s_w`` up to 1.5 beside an output step of 0.045, up to 16 steps on 0.3 % of a tensor.
That is what int8 inference with an int32 bias computes, not a fault of the saved models: a
:class:`BiasGridIssue` names the tensor, the layer and its coarsest bias step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.front.save.verify_budget import BIAS_GRID, Comparison, VerifyBudget, Violation
from qdqforge.graph.held_arrays import array_of

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
MISPLACED = "qdq_int32_bias"  # the violation's name: a check of the QDQ model alone


@dataclass(frozen=True)
class BiasSite:
    """One int32 bias of the QDQ model beside the fake-quant model's float bias."""

    tensor: str
    layer: str
    float_bias: np.ndarray
    integers: np.ndarray
    scale: np.ndarray
    grid: np.ndarray | None


@dataclass(frozen=True)
class BiasGridIssue:
    """Where the int32 bias grid moves a quantized tensor by more than the round-off budget."""

    tensor: str
    layer: str | None
    effect: str
    cause: str

    def text(self) -> str:
        """The one warning line."""
        return (
            f"the qdq and deploy models' int32 bias moves {self.tensor} (after layer "
            f"{self.layer}): {self.effect}. Cause: {self.cause}. This is int8 inference's "
            f"arithmetic (the fake-quant model keeps the float bias); skip the layer to keep it "
            f"in float"
        )


def bias_sites(fake: onnx.ModelProto, qdq: onnx.ModelProto) -> list[BiasSite]:
    """Every int32 bias DequantizeLinear of ``qdq`` whose layer node ``fake`` also holds."""
    q_inits = {i.name: i for i in qdq.graph.initializer}
    f_inits = {i.name: i for i in fake.graph.initializer}
    fake_nodes = {n.name: n for n in fake.graph.node}
    producer = {out: n for n in qdq.graph.node for out in n.output}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in qdq.graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    sites = []
    for node in qdq.graph.node:
        ints = q_inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if ints is None or ints.data_type != onnx.TensorProto.INT32:
            continue
        (user, index), *_ = consumers.get(node.output[0], [(None, 0)])
        twin = fake_nodes.get(user.name) if user is not None else None
        if twin is None or index >= len(twin.input) or twin.input[index] not in f_inits:
            continue
        integers = array_of(ints).astype(np.float64)
        scale = array_of(q_inits[node.input[1]]).astype(np.float64)
        grid = _grid(user, node.output[0], producer, q_inits)
        sites.append(
            BiasSite(
                node.output[0],
                node.output[0].removesuffix(".bias_dequant.out"),
                array_of(f_inits[twin.input[index]]).astype(np.float64),
                integers,
                np.broadcast_to(scale, integers.shape),  # per-tensor scales too
                None if grid is None else np.broadcast_to(grid, integers.shape),
            )
        )
    return sites


def _grid(user: onnx.NodeProto, bias: str, producer: dict, inits: dict) -> np.ndarray | None:
    """``s_d * s_w`` from the scales of the DequantizeLinear feeding the layer, if found."""
    layer = user
    if user.op_type == "Add":  # MatMul + Add: the layer is the MatMul beside the bias
        layer = next((producer.get(i) for i in user.input if i != bias and i in producer), None)
    if layer is None or layer.op_type not in LAYER_OPS:
        return None
    scales = []
    for name in layer.input[:2]:
        dq = producer.get(name)
        while dq is not None and dq.op_type in LAYOUT_OPS:  # e.g. DQ(W) -> Transpose -> MatMul
            dq = producer.get(dq.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
            return None
        scales.append(array_of(inits[dq.input[1]]).astype(np.float64))
    return scales[0] * scales[1]


def float_bias_feeds(sites: list[BiasSite]) -> dict[str, np.ndarray]:
    """The fake-quant model's float biases, by the QDQ tensor they replace (float32)."""
    return {s.tensor: s.float_bias.astype(np.float32) for s in sites}


def misplaced_bias(sites: list[BiasSite]) -> Violation | None:
    """The first int32 bias off its layer's grid or more than half a step from the float bias."""
    for site in sites:
        if site.grid is not None and not np.allclose(site.scale, site.grid, rtol=1e-6, atol=0):
            worst = float(np.max(np.abs(site.scale / site.grid - 1)))
            why = f"its scale is not s_d * s_w of the layer (off by {worst:.3g} relative)"
            return Violation(MISPLACED, site.tensor, why)
        error = np.abs(site.integers * site.scale - site.float_bias)
        allowed = site.scale / 2 * (1 + 1e-6) + 1e-7 * np.abs(site.float_bias)
        if bool(np.any(error > allowed)):
            c = int(np.argmax(error - allowed))
            why = (
                f"channel {c} holds {site.integers[c]:.0f} steps of {site.scale[c]:.3g}, "
                f"{error[c]:.3g} from the float bias {site.float_bias[c]:.6g} (more than half "
                f"a step)"
            )
            return Violation(MISPLACED, site.tensor, why)
    return None


def coarse_bias_issues(
    comparison: Comparison, sites: list[BiasSite], qdq: onnx.ModelProto, budget: VerifyBudget
) -> list[BiasGridIssue]:
    """A warning per tensor that the int32 rounding moves beyond the round-off budget."""
    producer = {out: n for n in qdq.graph.node for out in n.output}
    by_tensor = {s.tensor: s for s in sites}
    issues = []
    for t in comparison.tensors:
        if t.max_steps <= budget.max_steps and t.differ <= budget.allowed_flips(t.total, BIAS_GRID):
            continue
        upstream = [by_tensor[n] for n in _upstream_biases(t.tensor, producer) if n in by_tensor]
        coarsest = max(upstream, key=lambda s: float(np.max(s.scale)), default=None)
        cause = "no int32 bias feeds it: check the layers before it"
        if coarsest is not None:
            step = float(np.max(coarsest.scale))
            cause = (
                f"layer {coarsest.layer}'s int32 bias steps s_d * s_w reach {step:.3g} (large "
                f"weights in a channel make its grid coarse), and each bias moves by up to half "
                f"a step"
            )
        effect = f"{t.differ} of {t.total} integers off, by up to {t.max_steps} steps"
        layer = coarsest.layer if coarsest is not None else None
        issues.append(BiasGridIssue(t.tensor, layer, effect, cause))
    return issues


def _upstream_biases(tensor: str, producer: dict) -> list[str]:
    """Bias tensors between ``tensor`` and the quantized activations it is computed from."""
    found, seen, todo = [], set(), [tensor]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for name in node.input:
            if name.endswith(".bias_dequant.out"):
                found.append(name)
            elif not name.endswith(".quant.out"):
                todo.append(name)
    return found
