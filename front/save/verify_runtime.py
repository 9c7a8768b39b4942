"""The save-time check's second stage: every saved model as a default onnxruntime session runs it.

``ort.InferenceSession(path)`` with no options applies every graph optimization: float fusions
(Conv+activation, NCHWc layouts, GELU, LayerNorm) and, for QDQ node groups, integer kernels
(QLinearConv, QGemm, MatMulIntegerToFloat, ...). onnxruntime writes the graph it runs
(``numerics.optimized_graph``); on it, per saved model:

* a forced run (``graph.forced_run``) with the reference's integers fed in at every quantized
  activation that kept its name: each layer's integers as this runtime computes them; an output
  that a rounding reaches past the forced tensors (``graph.rounding_cone``) is not judged;
* an audit of every fused integer kernel against its float decomposition
  (``graph.kernel_audit``): where the kernel saturates, it is named with its layer;
* a free run of that graph: its integers and outputs, for the user's end-to-end view (not
  judged); the graph onnxruntime writes is the one its default session runs (same outputs bit
  for bit: tests/front/save/test_verify_runtime_graph.py), so no second default session is
  built for them.

A divergence in the fake-quant model is the tool's fault (its construction must survive any
runtime): a VerificationError. In the QDQ or deploy model it is the runtime's integer kernels:
:func:`runtime_issue` says which layer, what the kernel did, the likely cause (u8 x s8 pairs
summed into int16 with saturation on x86 CPUs without VNNI) and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from qdqforge.front.save.verify_budget import Comparison, Violation
from qdqforge.front.save.verify_diffs import free_running, grid_errors, output_errors
from qdqforge.front.save.verify_taps import Run, ort_forced, ort_run_reading, produced
from qdqforge.graph import numerics
from qdqforge.graph.kernel_audit import KernelCheck, audit_kernels, audited_tensors
from qdqforge.graph.rounding_cone import reached_by_rounding

SATURATION_SAFE = 64  # |w| <= 64: 2 * 255 * 64 = 32640 fits int16 (onnxruntime's reduce_range)
FIX_NO_SATURATION = (
    "run the fake-quant model (exact in any runtime) or the deploy model, or open this one with "
    "the session option session.disable_quant_qdq=1"
)
FIX = (
    'set "weight_reduce_range": true in the quantization config (weights on 7 bits: every u8 x s8 '
    "pair sum fits int16) and save again, or run the fake-quant model (exact in any runtime) or "
    "the deploy model, or open this one with the session option session.disable_quant_qdq=1"
)


@dataclass(frozen=True)
class RuntimeIssue:
    """What a default session does differently from the reference, for the report and the log."""

    model: str
    where: str
    layer: str | None
    effect: str
    cause: str
    fix: str

    def text(self) -> str:
        """The one warning line."""
        return (
            f"onnxruntime's default session on this machine computes the {self.model} model "
            f"differently at {self.where} (layer {self.layer}): {self.effect}. Likely cause: "
            f"{self.cause}. Fix: {self.fix}"
        )


def runtime_comparison(
    name: str, written: onnx.ModelProto, reference: Run, names: list[str], feeds, bits
) -> Comparison:
    """Compare ``written`` as the default session runs it with ``reference`` (its integers)."""
    held = numerics.held_optimized_graph(written)  # kept while its copies run
    optimized = held.model
    # the optimized graph runs with the kernels of a default session (weights prepacked)
    forced_out, forced_q = ort_forced(
        optimized, written, feeds, reference[1], session_of=numerics.session
    )
    # one free run: the user's end-to-end view and the kernel audit's inputs and outputs
    free_run, audited = ort_run_reading(
        optimized, names, audited_tensors(optimized), feeds, session_of=numerics.session
    )
    free = free_running(names, reference, free_run, bits)
    outputs = [o.name for o in written.graph.output]
    kept = produced(optimized)
    unforced = reached_by_rounding(optimized, outputs, forced_q)
    differences = [
        dataclasses.replace(d, forced=d.output not in unforced)
        for d in output_errors(outputs, reference[0], forced_out)
    ]
    return Comparison(
        name,
        "runtime",
        grid_errors(names, reference[1], forced_q, bits),
        differences,
        kernels=audit_kernels(optimized, feeds, exposed=audited),
        free_running=free,
        not_compared=[n for n in names if n not in kept],
    )


def runtime_issue(
    model: str, comparison: Comparison, violation: Violation, layers: list[str]
) -> RuntimeIssue:
    """Name, effect, likely cause and fix of a runtime divergence (module docstring)."""
    kernel = next((k for k in comparison.kernels if k.node == violation.tensor), None)
    if kernel is None:
        layer = violation.tensor.removesuffix(".quant.out")
        fix = FIX if any(_may_saturate(k) for k in comparison.kernels) else FIX_NO_SATURATION
        return RuntimeIssue(
            model, violation.tensor, layer, violation.reason, _unexplained(comparison), fix
        )
    return RuntimeIssue(
        model,
        violation.tensor,
        kernel_layer(kernel, layers),
        f"onnxruntime's fused {kernel.op_type} {violation.reason.split(') ', 1)[-1]}",
        _kernel_cause(kernel),
        FIX if _may_saturate(kernel) else FIX_NO_SATURATION,
    )


def kernel_layer(kernel: KernelCheck, layers: list[str]) -> str | None:
    """The layer whose input quantizer (``<layer>.quant.scale``) or weight a kernel reads."""
    for name in kernel.inputs:
        if name.endswith(".quant.scale") and name.removesuffix(".quant.scale") in layers:
            return name.removesuffix(".quant.scale")
    matches = [layer for layer in layers if any(i.startswith(f"{layer}.") for i in kernel.inputs)]
    return max(matches, key=len, default=None)


def _can_saturate(kernel: KernelCheck) -> bool:
    """u8 x s8 pair sums can pass int16 only where a weight is beyond ``SATURATION_SAFE``."""
    return kernel.weight_max is None or kernel.weight_max > SATURATION_SAFE


def _may_saturate(kernel: KernelCheck) -> bool:
    """Saturation is possible here: weights beyond 7 bits on a CPU not known to have VNNI (with
    VNNI the u8 x s8 products are summed into int32: ``weight_reduce_range`` changes nothing
    there; measured on an AVX-512 VNNI CPU, a QAT ResNet-18's QDQ output still differed by 0.9 %
    of its range with it, 1.4 % without)."""
    return cpu_has_vnni() is not True and _can_saturate(kernel)


def _kernel_cause(kernel: KernelCheck) -> str:
    vnni = cpu_has_vnni()
    if vnni is False and not _can_saturate(kernel):
        return (
            f"not int8 saturation (its weights fit 7 bits, |w| <= {kernel.weight_max}): "
            f"onnxruntime's {kernel.op_type} computes differently from its float decomposition "
            "on this CPU, e.g. in the fixed-point requantization of its output"
        )
    if vnni is False:
        return (
            f"int8 saturation: onnxruntime's {kernel.op_type} multiplies u8 activations by s8 "
            "weights and sums the products in pairs into int16 (vpmaddubsw) on x86 CPUs without "
            f"VNNI, as this one; a pair beyond 32767 saturates when |weight| > {SATURATION_SAFE}"
        )
    return (
        f"onnxruntime's {kernel.op_type} kernel computes differently from its float "
        f"decomposition on this CPU (VNNI: {'unknown' if vnni is None else 'yes'})"
    )


def _unexplained(comparison: Comparison) -> str:
    fused = sorted({k.op_type for k in comparison.kernels})
    return (
        "onnxruntime's optimized graph computes this layer differently"
        + (f" (its integer kernels here: {', '.join(fused)})" if fused else "")
        + f"; onnxruntime {ort.__version__}"
    )


@functools.cache
def cpu_has_vnni() -> bool | None:
    """True/False from ``/proc/cpuinfo`` flags (avx512_vnni, avx_vnni); None when unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = next((line for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags.split()))
