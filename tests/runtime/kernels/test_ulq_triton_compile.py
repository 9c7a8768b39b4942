"""The fused QAT kernels compile for a real GPU (sm_90: H100/H200) without one, and the PTX does the
arithmetic the references do: IEEE division (``div.rn``; Triton's ``/`` on float32 would be
``div.full``, 2 ulp), ``floor`` as ``cvt.rmi``, no approximate ops, no FMA contraction."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

KERNELS = ["fwd_act", "fwd_weight", "bwd_act", "bwd_weight"]  # triton_aot.VARIANTS


def test_kernels_compile_to_ieee_ptx(tmp_path, arch=90):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    script = Path(__file__).with_name("triton_aot.py")
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ptx"), str(arch)],
        check=True, env=env, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    for name in KERNELS:
        for dtype in ("fp32", "fp64"):
            ptx = (tmp_path / "ptx" / f"{name}.{dtype}.ptx").read_text()
            ops = set(re.findall(r"\b(?:div|rcp|sqrt|fma|cvt)\.[\w.]+", ptx))
            assert f"div.rn.f{dtype[2:]}" in ops, (name, dtype, ops)
            assert any(op.startswith("cvt.rmi") for op in ops), (name, dtype, ops)
            assert not any("approx" in op or "full" in op or "fma" in op for op in ops), ops
