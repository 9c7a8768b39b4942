"""Untrusted ONNX never makes qdqforge allocate what its constants describe.

``test_bombs_stay_small`` runs ten ~130-300 byte models whose constants expand to 2^26
elements (256-512 MiB) through every entry point that evaluates a model (passes run with and
without onnxruntime, rewrite, reimport, the numeric diff) in a fresh child process, with the
one-tensor limit lowered to 16 MiB: its peak RSS must not grow by the size of a bomb. (Its
address space is capped at the imported size + 1 GiB, so a regression cannot take the machine's
memory.) Before the size checks, ``qdqforge passes run`` on the 131-byte ConstantOfShape model of
2^31 elements peaked at 8.7 GB RSS (``/usr/bin/time -v``); the catalogue's ``onnx:*`` rows use
that size.

``test_predicted_size_is_the_evaluated_size`` is the property behind the checks: for every
amplifying op, the element count predicted before evaluating equals the one evaluation gives.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

from qdqforge.graph.tensor_budget import node_output_elements
from tests.reliability.bombs import KINDS, amplifier

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"passes_check_ort", "diff"}  # run the model in onnxruntime: must refuse
SINGLE_NODE = [k for k in KINDS if k not in ("reduce_chain", "shape_product")]


def test_bombs_stay_small():
    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.memory_probe", str(1 << 26)],
        cwd=ROOT,
        env={**os.environ, "QDQFORGE_MAX_TENSOR_BYTES": str(1 << 24)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    *rows, peak = [json.loads(line) for line in child.stdout.splitlines()]
    assert len(rows) == len(KINDS) * 5
    assert [r for r in rows if r["error"] == "MemoryError"] == []
    for row in rows:
        if row["call"] in RUNNERS:  # refused, or not run: unsupported ops (exit 3)
            assert row["error"] in ("GraphError", "UnsupportedOpsError") or row["exit_code"] == 3

        if row["error"] == "GraphError":
            assert "tensor 'big'" in row["message"], row
            assert "over the 16 MiB limit" in row["message"], row
    grown = peak["maxrss_kb_after"] - peak["maxrss_kb_before"]
    assert grown < 128 * 1024, f"peak RSS grew by {grown} kB over the bombs"


@given(kind=st.sampled_from(SINGLE_NODE), n=st.integers(1, 4096))
def test_predicted_size_is_the_evaluated_size(kind, n):
    if kind == "resize":
        n = math.isqrt(n) ** 2
    (node,), consts = amplifier(kind, n)
    predicted = node_output_elements(node, consts, 17)
    (value,) = ReferenceEvaluator(node).run(None, consts)
    assert predicted == [np.asarray(value).size]
