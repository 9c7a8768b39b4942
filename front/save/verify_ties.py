"""Flips that are float ties: both models' values sit on the same rounding half-point.

A forced round-off comparison (:mod:`.verify_budget`) counts the integers of a tensor that two
models round differently. Float round-off flips a rounding only where a value lies within the
round-off of a half-point ``k + 1/2`` of its grid, which is rare for spread values (measured
2.7e-5 of a tensor's integers) but not where a tensor repeats one value: an attention block of
LeViT-128S after QAT has a channel whose value is the same at four positions and lies 8e-6 steps
from a half-point, so one tie flips four of the tensor's 1,536 integers (2.6e-3, over the 1e-3
budget; the QDQ and deploy values there differ by 1.1e-5 steps, at most 3.8e-5 over the tensor).

So where a tensor of a round-off comparison between two ONNX models has more flips than the
budget allows, both models run again with the tensor's float input exposed (model ``a`` free,
model ``b`` forced with ``a``'s integers, as the comparison ran), and each flip whose two
pre-rounding values ``x / s + o`` differ by at most :data:`TIE_STEPS` of the grid's step is a
*tie*: the models computed the same value and it lies on a half-point, which is float round-off
and nothing else. Ties are reported and not counted against the budget; a wrong scale, offset,
weight or kernel moves the values themselves (a scale off by 0.1 % moves a value 36 steps from
zero by 0.036 steps), so its flips stay counted. Only 8-bit ``QuantizeLinear`` tensors with a
constant scalar scale and offset are examined; anything else keeps its count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import onnx

from qdqforge.front.save.verify_budget import Comparison, VerifyBudget
from qdqforge.front.save.verify_taps import ort_forced, ort_run_reading
from qdqforge.graph.exposed_run import expose
from qdqforge.graph.held_arrays import array_of
from qdqforge.graph.quant_compare import GridMismatch

TIE_STEPS = 1e-3  # of the grid's step; 26x the largest QDQ-vs-deploy difference measured above


@dataclasses.dataclass(frozen=True)
class Rounding:
    """Where a ``QuantizeLinear`` output comes from: ``round(source / scale) + offset``."""

    source: str
    scale: float
    offset: int

    def steps(self, value: np.ndarray) -> np.ndarray:
        """The pre-rounding value on the integer grid, ``value / scale + offset``."""
        return np.asarray(value, np.float64) / self.scale + self.offset


def rounding_of(model: onnx.ModelProto, tensor: str) -> Rounding | None:
    """The float input, scale and offset of the ``QuantizeLinear`` computing ``tensor``, or
    None (another op, or a scale or offset that is not one constant)."""
    node = next((n for n in model.graph.node if tensor in n.output), None)
    if node is None or node.op_type != "QuantizeLinear":
        return None
    scale = _scalar(model, node.input[1])
    offset = _scalar(model, node.input[2]) if len(node.input) > 2 and node.input[2] else 0
    if scale is None or offset is None:
        return None
    return Rounding(node.input[0], float(scale), int(offset))


def _scalar(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    found = next((i for i in model.graph.initializer if i.name == name), None)
    if found is None:
        return None
    value = np.asarray(array_of(found))
    return value.reshape(-1)[0] if value.size == 1 else None


def over_budget(comparison: Comparison, budget: VerifyBudget) -> list[GridMismatch]:
    """8-bit tensors of ``comparison`` within the step budget but with too many flips."""
    return [
        t
        for t in comparison.tensors
        if t.bits == 8
        and t.max_steps <= budget.max_steps
        and budget.too_many_flips(t, comparison.kind)
    ]


def explain_ties(
    comparison: Comparison,
    budget: VerifyBudget,
    models: tuple[onnx.ModelProto, onnx.ModelProto],
    feeds: Mapping[str, np.ndarray],
    a_integers: Mapping[str, np.ndarray],
) -> Comparison:
    """``comparison`` with the ties of its over-budget tensors counted (module docstring).

    Args:
        comparison: a round-off comparison of model ``a`` (free) against ``b`` (forced).
        budget: the budget it is judged by.
        models: ``(a, b)`` as the comparison ran them.
        feeds: the graph inputs it ran on.
        a_integers: ``a``'s integers, forced into ``b``.
    """
    roundings = {}
    for t in over_budget(comparison, budget):
        pair = rounding_of(models[0], t.tensor), rounding_of(models[1], t.tensor)
        if None not in pair:
            roundings[t.tensor] = pair
    if not roundings:
        return comparison
    ties = _ties(roundings, models, feeds, a_integers)
    tensors = [
        dataclasses.replace(t, ties=ties[t.tensor]) if t.tensor in ties else t
        for t in comparison.tensors
    ]
    return dataclasses.replace(comparison, tensors=tensors)


def _ties(roundings: dict, models, feeds, a_integers) -> dict[str, int]:
    """``{tensor: ties}``: ``a`` run free and ``b`` forced, each with the tensors' float inputs
    exposed."""
    a_sources = [a.source for a, _ in roundings.values()]
    a_pre = ort_run_reading(models[0], [], a_sources, feeds)[1]
    exposed = expose(models[1], [b.source for _, b in roundings.values()])
    outputs, b_integers = ort_forced(exposed, models[1], feeds, a_integers)
    b_pre = dict(zip([o.name for o in exposed.graph.output], outputs, strict=True))
    return {
        name: _tie_count(
            (a_integers[name], b_integers[name]),
            (a.steps(a_pre[a.source]), b.steps(b_pre[b.source])),
        )
        for name, (a, b) in roundings.items()
        if name in b_integers
    }


def _tie_count(integers: tuple, steps: tuple) -> int:
    """Flipped integers whose two pre-rounding values (in steps) differ by <= TIE_STEPS."""
    flipped = np.asarray(integers[0], np.int64) != np.asarray(integers[1], np.int64)
    close = np.abs(steps[0] - steps[1]) <= TIE_STEPS
    return int(np.count_nonzero(flipped & close))
