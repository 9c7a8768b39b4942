"""Compile the fused QAT kernels ahead of time for a CUDA target, without a GPU (Triton's own
LLVM and bundled ptxas), and write each kernel's PTX: ``python triton_aot.py OUT_DIR [ARCH]``.

Run in a process without ``TRITON_INTERPRET`` (the kernels must be ``JITFunction``s). Launch
options are the ones :mod:`qdqforge.runtime.kernels.ulq_fused` uses."""

from __future__ import annotations

import sys
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from qdqforge.runtime.kernels import ulq_triton
from qdqforge.runtime.kernels.ulq_fused import BLOCK, IEEE

# label: (kernel, constexprs) for every specialization ulq_fused launches
VARIANTS = {
    "fwd_act": ("fake_quant_fwd_kernel", {"qmin": -128, "qmax": 127, "per_row": False,
                                          "has_offset": True}),
    "fwd_weight": ("fake_quant_fwd_kernel", {"qmin": -8, "qmax": 7, "per_row": True,
                                             "has_offset": False}),
    "bwd_act": ("ulq_act_bwd_kernel", {}),
    "bwd_weight": ("ulq_weight_bwd_kernel", {"qmin": -8, "qmax": 7}),
}  # fmt: skip


def signature(kernel, dtype: str) -> dict[str, str]:
    names = [p.name for p in kernel.params]
    return {
        n: "constexpr" if p.is_constexpr else f"*{dtype}" if n.endswith("_ptr") else "i32"
        for n, p in zip(names, kernel.params)
    }


def compile_all(out: Path, arch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for label, (name, consts) in VARIANTS.items():
        kernel = getattr(ulq_triton, name)
        for dtype in ("fp32", "fp64"):
            src = ASTSource(kernel, signature(kernel, dtype), {**consts, "block": BLOCK})
            compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=IEEE)
            assert compiled.asm["cubin"], f"{label} {dtype}: no cubin"
            (out / f"{label}.{dtype}.ptx").write_text(compiled.asm["ptx"])


if __name__ == "__main__":
    compile_all(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 90)
