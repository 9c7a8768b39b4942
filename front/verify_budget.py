"""What the save-time check allows, and how one comparison of two models is judged.

Per compared pair of models (torch vs fake-quant, fake-quant vs deploy), on every quantized
activation ``<layer>.quant.out``, in topological order:

* the first ``sharp_depth`` (3) quantized activations in topological order, where float noise
  has not yet been amplified: at most ``shallow_far_fraction`` (1e-3) of a tensor's integers
  more than ``max_steps`` (1) off (EfficientNet-Lite0's third tensor has 125 of 3.2M integers up
  to 18 steps off where a folded bias cancels a large depthwise output: tiny float differences,
  large relative ones), and ``sum(differ) <= fraction * sum(total)`` over them: fake-quant vs deploy
  (``deploy_flip_fraction``, 1e-3; measured 2 of 705k integers over the five PTQ test models),
  torch vs fake-quant (``torch_flip_fraction``, 0.1: a QAT module keeps BN unfolded and
  computes ULQ its own way; measured after 3 QAT steps 0.1%-4.9%, all one step);
* deeper activations (the documented deep-net budget): at most ``deep_far_fraction`` (0.25) of
  a tensor's integers more than one step off. Float summation order differs between torch and
  onnxruntime kernels and between float and integer convolutions; each flip moves the next
  layer's inputs and the flips multiply with depth, most where a folded bias cancels a large
  conv output. Measured on EfficientNet-Lite0 (50 layers, PTQ): up to 7.2% (torch vs
  fake-quant) and 5.8% (fake-quant vs deploy) of a deep tensor's integers more than one step
  off, outputs within 1.3%; MiniLM-L6: 2-3 steps on <= 0.5%. A wrong scale moves most of its
  tensor's integers;
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
    sharp_depth: int = 3
    shallow_far_fraction: float = 1e-3
    deep_far_fraction: float = 0.25
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
        """The first tensor (then output) beyond ``budget``, or None (module docstring)."""
        shallow, deep = self.tensors[: budget.sharp_depth], self.tensors[budget.sharp_depth :]
        for t in shallow:
            if t.beyond_one > budget.shallow_far_fraction * t.total:
                why = (
                    f"differs by up to {t.max_steps} steps, by more than {budget.max_steps} on "
                    f"{t.beyond_one} of {t.total} integers (budget "
                    f"{budget.shallow_far_fraction:g} of them)"
                )
                return Violation(self.name, t.tensor, why)
        fraction = budget.flip_fraction(self.name)
        differ, total = sum(t.differ for t in shallow), sum(t.total for t in shallow)
        if differ > fraction * total:
            first = next(t for t in shallow if t.differ)
            why = (
                f"is the first of the first {len(shallow)} tensors, where {differ} of {total} "
                f"integers differ (budget {fraction:g} of them)"
            )
            return Violation(self.name, first.tensor, why)
        for t in deep:
            if t.beyond_one > budget.deep_far_fraction * t.total:
                why = (
                    f"has {t.beyond_one} of {t.total} integers more than one step off (up to "
                    f"{t.max_steps}; budget {budget.deep_far_fraction:g} of them this deep)"
                )
                return Violation(self.name, t.tensor, why)
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
            size = max(qa.size, qb.size)
            result.append(GridMismatch(name, 2**31, size, size, size))
            continue
        delta = np.abs(qa - qb)
        steps, differ, far = (
            int(delta.max(initial=0)),
            int((delta > 0).sum()),
            int((delta > 1).sum()),
        )
        result.append(GridMismatch(name, steps, differ, qa.size, far))
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
