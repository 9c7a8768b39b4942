"""What the save-time check allows, and how one comparison of two models is judged.

Every judged comparison is *forced* (:mod:`qdqforge.graph.forced_run`): model B runs with model A's
integers fed in at every quantized activation ``<layer>.quant.out``, so each of B's integer
tensors is computed from the same upstream integers as A's. What is left between them is one
layer's float round-off, whatever the depth; a wrong scale, offset, weight, bias or kernel shows
at its own layer. Per tensor:

* no integer more than ``max_steps`` (1) int8-equivalent step off;
* at most ``flip_fraction`` (1e-3) of its integers one step off, or ``min_flips`` (1) when that is
  more (one float tie in a 128-integer tensor is 1/128). Measured (forced, PTQ, 2 batches): torch
  module vs fake-quant model at most 2.7e-5 of a tensor's integers (EfficientNet-Lite0,
  MiniLM-L6, four CI test nets; 6.1e-5 in onnxruntime's default session); QDQ vs deploy 2.7e-5
  (one flip in 1,280 on a transformer). A wrong scale or an offset one off moves most of a
  tensor's integers. Flips that are float ties, both models' values on one rounding half-point
  (a value repeated across a tensor flips at every position), are reported as ``ties`` and not
  counted: :mod:`.verify_ties` (``qdq_vs_deploy``).
* outputs: ``max|y_a - y_b| <= output_rtol (1e-4) * max|y_a|``; measured <= 3e-7. Judged only
  where no rounding lies between the output and the forced tensors: in onnxruntime's optimized
  graph a tensor can be renamed or fused away (the QDQ model's on x86: every quantized tensor
  behind an s8 -> u8 conversion), and an output past such a rounding differs as a free run does
  (a QAT ResNet-18: 1.4 % of its range, with no kernel off); it is reported, not judged.

One comparison is of another kind: the deploy and QDQ models add the bias on the int32 grid
``s_d * s_w`` (AMCT's format) where the torch module and the fake-quant model add it in float.
``fake_quant_vs_qdq`` runs the QDQ model with the fake-quant model's float biases fed in at its
bias DequantizeLinear outputs; what is left is float round-off between the two models' weights
(DequantizeLinear's ``q * s`` against the fake-quant model's stored float weights) and summation
order, which flips roundings more often than one model's round-off alone (measured: 3 of 1,024
integers of a depthwise layer of the QAT test net, 54 of 61 million on EfficientNet-Lite0), so it
keeps the budget this comparison always had: ``max_steps`` and ``bias_flip_fraction`` (0.1).
The int32 biases are checked on their own (:mod:`.verify_bias`), and their rounding is measured
as ``fake_quant_vs_qdq_bias`` (kind ``bias_grid``), which is not judged. Each bias moves by at
most half a step of ``s_d * s_w``, which flips the next quantizer's rounding where a value lies
that close to a boundary (measured, forced: up to 1.95e-2 of a tensor's integers on MiniLM-L6,
whose LayerNorms amplify the shift of small-variance channels; 1.6e-2 on the MobileNet test net;
one step), and where a channel's weights are large moves integers by several steps
(EfficientNet-Lite0 after QAT set-up: up to 16). Beyond that same budget it is a warning
(``bias_grid_warnings``), not a failure: it is what int8 inference with an int32 bias computes.

Steps are int8 steps. A tensor on a 16-bit grid (a layer with ``act_type`` INT16) is compared
in its own integers and judged in int8-equivalent steps, ``round(d / 256)`` for ``d`` int16
integers (``graph.quant_compare``): the same error in value as on int8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdqforge.front.save.verify_diffs import FreeRunning, OutputDifference
from qdqforge.graph.batch_samples import CHECK_SAMPLES
from qdqforge.graph.kernel_audit import KernelCheck
from qdqforge.graph.quant_compare import GridMismatch

BIAS = "bias"
BIAS_GRID = "bias_grid"  # measured, never judged (verify_bias)


@dataclass(frozen=True)
class VerifyBudget:
    """Allowed disagreement between two forced runs (module docstring), and how many samples of
    the example batch the check runs (``samples``; ``None``: all; ``graph.batch_samples``)."""

    max_steps: int = 1
    flip_fraction: float = 1e-3
    min_flips: int = 1
    bias_flip_fraction: float = 0.1
    output_rtol: float = 1e-4
    kernel_float_rtol: float = 1e-4
    samples: int | None = CHECK_SAMPLES  # of the example batch the check runs; None: all

    def allowed_flips(self, total: int, kind: str) -> float:
        """How many of ``total`` integers may be one step off."""
        fraction = self.bias_flip_fraction if kind in (BIAS, BIAS_GRID) else self.flip_fraction
        return max(fraction * total, self.min_flips)

    def too_many_flips(self, t: GridMismatch, kind: str) -> bool:
        """More of ``t``'s integers one step off than allowed, its float ties not counted."""
        return t.differ - t.ties > self.allowed_flips(t.total, kind)


@dataclass(frozen=True)
class Violation:
    """The first place a comparison leaves its budget."""

    comparison: str
    tensor: str
    reason: str


@dataclass
class Comparison:
    """Model ``a`` against model ``b`` forced with ``a``'s integers.

    Attributes:
        name: ``<a>_vs_<b>`` (``torch_vs_fake_quant``, ...).
        stage: ``reference`` (every model as written, optimizations off) or ``runtime`` (b as
            onnxruntime's default session runs it).
        tensors: per quantized activation, in topological order.
        outputs: the forced outputs.
        kind: ``round_off``, ``bias`` or ``bias_grid`` (module docstring).
        kernels: fused integer kernels of the runtime's graph against their float decomposition.
        free_running: the unforced comparison.
        not_compared: tensors of ``a`` that ``b`` does not compute under that name.
    """

    name: str
    stage: str
    tensors: list[GridMismatch]
    outputs: list[OutputDifference]
    kind: str = "round_off"
    kernels: list[KernelCheck] = field(default_factory=list)
    free_running: FreeRunning | None = None
    not_compared: list[str] = field(default_factory=list)

    @property
    def differ(self) -> int:
        return sum(t.differ for t in self.tensors)

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tensors)

    @property
    def max_steps(self) -> int:
        return max((_int8_steps(t) for t in self.tensors), default=0)

    def violation(self, budget: VerifyBudget) -> Violation | None:
        """The first tensor, kernel, then output beyond ``budget``, or None."""
        for t in self.tensors:
            if _int8_steps(t) > budget.max_steps or budget.too_many_flips(t, self.kind):
                return Violation(self.name, t.tensor, _tensor_reason(t, budget, self.kind))
        for k in self.kernels:
            if _kernel_off(k, budget):
                return Violation(self.name, k.node, _kernel_reason(k))
        if self.kind in (BIAS, BIAS_GRID):
            return None
        for out in self.outputs:
            if out.forced and not out.max_rel <= budget.output_rtol:
                why = f"differs by {out.max_rel:.3g} of its range (budget {budget.output_rtol:g})"
                return Violation(self.name, out.output, why)
        return None


def _int8_steps(t: GridMismatch) -> int:
    unit = 2 ** (t.bits - 8)
    return (t.max_steps + unit // 2) // unit


def _kernel_off(k: KernelCheck, budget: VerifyBudget) -> bool:
    if not k.integer:
        return not k.max_rel <= budget.kernel_float_rtol
    return k.max_steps > budget.max_steps or k.differ > budget.allowed_flips(k.total, "")


def _tensor_reason(t: GridMismatch, budget: VerifyBudget, kind: str) -> str:
    allowed = budget.allowed_flips(t.total, kind)
    ties = f", {t.ties} of them float ties" if t.ties else ""
    return (
        f"has {t.differ} of {t.total} integers off, by up to {_steps(t)}{ties} (budget: "
        f"{budget.max_steps} step on at most {allowed:.4g} of them)"
    )


def _kernel_reason(k: KernelCheck) -> str:
    what = f"up to {k.max_steps} steps" if k.integer else f"up to {k.max_rel:.3g} of its range"
    return (
        f"({k.op_type}) differs from its float decomposition on {k.differ} of {k.total} "
        f"outputs, by {what}"
    )


def _steps(t: GridMismatch) -> str:
    if t.bits == 8:
        return f"{t.max_steps} steps"
    int8_steps = t.max_steps / 2 ** (t.bits - 8)
    return f"{t.max_steps} steps of its {t.bits}-bit grid ({int8_steps:.3g} int8 steps)"
