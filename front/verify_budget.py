"""What the save-time check allows, and how one comparison of two models is judged.

Per compared pair of models (torch vs fake-quant, fake-quant vs deploy), on every quantized
activation ``<layer>.quant.out``, in topological order:

* ``|q_a - q_b| <= max_steps`` (default 1): the same weights, bias and scales give the same
  integers up to a rounding that float summation order flips (``x / s`` lands within an ulp of a
  half step);
* ``sum(differ) <= fraction * sum(total)``: such flips are rare. fake-quant vs deploy
  (``deploy_flip_fraction``, 1e-3): measured on the five PTQ test models (ResNet, MobileNet,
  transformer, hand attention, small CNN), 2 of 705k integers, each by one step (3e-6).
  torch vs fake-quant (``torch_flip_fraction``, 0.1): PTQ's reimport flipped none of 351k, but
  a QAT module keeps BN unfolded and computes ULQ its own way, and in deep nets each flip moves
  later inputs, so flips cascade. Measured after 3 QAT steps, all one step: small CNN 0.46%,
  ResNet 0.14%, MobileNet 0.10%, transformer 0.19%, two-block attention 4.9% (2 flips in its
  first block's input, 256 in its last). The step bound is the sharp test; the share still
  catches a systematic offset (every integer one step off);
* outputs: ``max|y_a - y_b| <= rtol * max|y_a|`` with ``output_rtol`` (1e-4) when no integer
  differs (float round-off only) and ``flipped_output_rtol`` (5e-2) when some flipped (a flip
  moves the outputs by its step times the weights after it).

A broken scale moves every integer after it by many steps, so the first violation, in
topological order, names the tensor right after the fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qdqforge.graph.quant_compare import GridMismatch


@dataclass(frozen=True)
class VerifyBudget:
    """Allowed disagreement between two saved stages (module docstring)."""

    max_steps: int = 1
    deploy_flip_fraction: float = 1e-3
    torch_flip_fraction: float = 0.1
    output_rtol: float = 1e-4
    flipped_output_rtol: float = 5e-2

    def flip_fraction(self, comparison: str) -> float:
        """The allowed share of differing integers for ``torch_vs_*`` or the ONNX pair."""
        if comparison.startswith("torch"):
            return self.torch_flip_fraction
        return self.deploy_flip_fraction


@dataclass(frozen=True)
class OutputError:
    """Largest absolute and relative (to ``max|reference|``) error of one model output."""

    output: str
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class Violation:
    """The first place a comparison leaves its budget."""

    comparison: str
    tensor: str
    reason: str


@dataclass
class Comparison:
    """Model ``a`` against model ``b`` on the integer grids and the outputs."""

    name: str
    tensors: list[GridMismatch]
    outputs: list[OutputError]
    not_compared: list[str] = field(default_factory=list)

    @property
    def differ(self) -> int:
        return sum(t.differ for t in self.tensors)

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tensors)

    @property
    def max_steps(self) -> int:
        return max((t.max_steps for t in self.tensors), default=0)

    def violation(self, budget: VerifyBudget) -> Violation | None:
        """The first tensor (then output) beyond ``budget``, or None."""
        for t in self.tensors:
            if t.max_steps > budget.max_steps:
                why = f"differs by up to {t.max_steps} steps on {t.differ} of {t.total} integers"
                return Violation(self.name, t.tensor, why + f" (budget {budget.max_steps} step)")
        fraction = budget.flip_fraction(self.name)
        if self.differ > fraction * self.total:
            first = next(t for t in self.tensors if t.differ)
            why = (
                f"is the first of the tensors where {self.differ} of {self.total} integers "
                f"differ (budget {fraction:g} of them)"
            )
            return Violation(self.name, first.tensor, why)
        rtol = budget.output_rtol if self.differ == 0 else budget.flipped_output_rtol
        for out in self.outputs:
            if not out.max_rel <= rtol:
                why = f"differs by {out.max_rel:.3g} of its range (budget {rtol:g})"
                return Violation(self.name, out.output, why)
        return None


def grid_errors(
    order: list[str], a: dict[str, np.ndarray], b: dict[str, np.ndarray]
) -> list[GridMismatch]:
    """Per tensor of ``order`` present in both, how ``b``'s integers differ from ``a``'s."""
    result = []
    for name in (n for n in order if n in a and n in b):
        qa, qb = np.asarray(a[name], np.int64), np.asarray(b[name], np.int64)
        if qa.shape != qb.shape:
            result.append(GridMismatch(name, 2**31, max(qa.size, qb.size), max(qa.size, qb.size)))
            continue
        delta = np.abs(qa - qb)
        result.append(
            GridMismatch(name, int(delta.max(initial=0)), int((delta > 0).sum()), qa.size)
        )
    return result


def output_errors(names: list[str], a: list[np.ndarray], b: list[np.ndarray]) -> list[OutputError]:
    """Per output pair, max |a - b| absolute and relative to ``max|a|``."""
    if len(a) != len(b):
        return [OutputError(f"{len(a)} vs {len(b)} outputs", float("inf"), float("inf"))]
    result = []
    for name, ya, yb in zip(names, a, b):
        ya, yb = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
        if ya.shape != yb.shape:
            result.append(OutputError(name, float("inf"), float("inf")))
            continue
        err = float(np.abs(ya - yb).max(initial=0.0))
        result.append(OutputError(name, err, err / max(float(np.abs(ya).max(initial=0.0)), 1e-12)))
    return result
