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

Steps are int8 steps. A tensor on a 16-bit grid (a layer with ``act_type`` INT16) is compared
in its own integers and judged in int8-equivalent steps, ``round(d / 256)`` for ``d`` int16
integers (``graph.quant_compare``). Its step is 256 times finer over the same range (257 times
for an asymmetric grid), so the same float noise ``e`` that flips an int8 rounding with
probability ``e / s8`` moves a 16-bit integer by about ``e / s16 = 256 e / s8``: counting raw
int16 steps would call float round-off a fault 256 times as often, and a one-step int16
difference is 1/256 of an int8 step, far below anything the budget above tolerates. So a 16-bit
integer "differs" from half an int8 step (128 int16 steps) on and is "more than one step off"
from 1.5 int8 steps (384) on, the same error in value as on int8. A wrong int16 scale still
moves most of the tensor by hundreds of int16 steps; an int16 offset wrong by fewer than 128
steps goes unseen, as an error below half an int8 step would on an int8 grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdqforge.front.verify_diffs import OutputError
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
                    f"differs by up to {_steps(t)}, by more than {budget.max_steps} on "
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
                    f"{_steps(t)}; budget {budget.deep_far_fraction:g} of them this deep)"
                )
                return Violation(self.name, t.tensor, why)
        rtol = budget.output_rtol if self.differ == 0 else budget.flipped_output_rtol
        for out in self.outputs:
            if not out.max_rel <= rtol:
                why = f"differs by {out.max_rel:.3g} of its range (budget {rtol:g})"
                return Violation(self.name, out.output, why)
        return None


def _steps(t: GridMismatch) -> str:
    if t.bits == 8:
        return f"{t.max_steps} steps"
    int8_steps = t.max_steps / 2 ** (t.bits - 8)
    return f"{t.max_steps} steps of its {t.bits}-bit grid ({int8_steps:.3g} int8 steps)"
