"""Fused QAT fake-quant kernels (runtime/kernels/ulq_fused.py) vs the torch reference Functions.

Per quantizer, forward + backward time (median of timed repeats after warm-up, CUDA events) of
the fused kernels and of the reference, the speed-up, and the achieved memory bandwidth: the
bytes a fused pass must move divided by the time (ULQ activation and ulq_retrain: read x, write
y; read x and dy, write dx = 20 B per float32 element; arq_retrain: ARQ's min/max read plus the
grid pass = 12 B, its STE backward moves nothing).

Usage: ``python bench/kernels.py`` (needs CUDA and triton; otherwise it prints that it skipped).
``--interpret`` runs tiny shapes on CPU under ``TRITON_INTERPRET=1``: a smoke test of this script
and of the kernels, its timings mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: (shape, bytes per element a fused forward + backward moves)
GPU_CASES = {
    "ulq_act": ((64, 256, 56, 56), 20),
    "arq_retrain": ((2048, 512, 3, 3), 12),
    "ulq_retrain": ((2048, 512, 3, 3), 20),
}
SMOKE_CASES = {name: ((4, 8, 6, 6), nbytes) for name, (_, nbytes) in GPU_CASES.items()}


def quantizer(name: str, x: torch.Tensor):
    """``(fused forward, reference forward, leaves)`` of one quantizer on ``x``."""
    from qdqforge.runtime.kernels import ulq, ulq_fused, ulq_weight

    w = x.detach().requires_grad_()
    m = w.reshape(w.shape[0], -1)
    if name == "ulq_act":
        clips = [torch.tensor(v, device=x.device, requires_grad=True) for v in (3.0, -1.0)]
        fused = partial(ulq_fused.FusedUlqActFakeQuant.apply, w, *clips, 8)
        return fused, partial(ulq.UlqActFakeQuant.apply, w, *clips, 8, torch.round), [w, *clips]
    if name == "arq_retrain":
        fused = partial(ulq_fused.FusedArqRetrainFakeQuant.apply, m, 8, True)
        return fused, partial(ulq_weight.ArqRetrainFakeQuant.apply, m, 8, True, torch.round), [w]
    s = ulq_weight.ulq_weight_init(m.detach()).requires_grad_()
    fused = partial(ulq_fused.FusedUlqWeightFakeQuant.apply, m, s, 8, 1e-3)
    return fused, partial(ulq_weight.UlqWeightFakeQuant.apply, m, s, 8, 1e-3, torch.round), [w, s]


def backward(forward, grad: torch.Tensor) -> torch.Tensor:
    y = forward()
    y.backward(grad)
    return y.detach()


def agreement(fused, ref, leaves, grad) -> tuple[bool, float]:
    """Forward equal (``torch.equal``), and the largest gradient difference relative to the
    reference gradient's largest magnitude."""
    results = []
    for forward in (fused, ref):
        for t in leaves:
            t.grad = None
        results.append((backward(forward, grad), [t.grad.clone() for t in leaves]))
    (y, grads), (y_ref, grads_ref) = results
    rel = [
        float((g - r).abs().max() / r.abs().max().clamp_min(1e-30))
        for g, r in zip(grads, grads_ref)
    ]
    return torch.equal(y, y_ref), max(rel)


def median_ms(fn, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(cases: dict, device: torch.device, warmup: int = 3, repeats: int = 20) -> list[dict]:
    rows = []
    for name, (shape, nbytes) in cases.items():
        x = torch.randn(shape, device=device)
        fused, ref, leaves = quantizer(name, x)
        grad = torch.randn_like(fused())
        equal, grad_rel = agreement(fused, ref, leaves, grad)
        steps = (partial(backward, fn, grad) for fn in (fused, ref))
        t_fused, t_ref = (median_ms(fn, device, warmup, repeats) for fn in steps)
        gbytes = nbytes * x.numel() / 1e9
        times = {"fused_ms": t_fused, "ref_ms": t_ref}
        speeds = {"fused_gbs": gbytes / t_fused * 1e3, "ref_gbs": gbytes / t_ref * 1e3}
        rows.append({"name": name, "shape": shape, "equal": equal, "grad_rel": grad_rel,
                     **times, **speeds})  # fmt: skip
    return rows


def render(rows: list[dict], device: str) -> str:
    header = (
        f"{'quantizer':<12} {'shape':<20} {'fused ms':>9} {'ref ms':>9} {'speed-up':>8} "
        f"{'fused GB/s':>10} {'ref GB/s':>9} {'fwd equal':>9} {'grad rel diff':>13}"
    )
    lines = [f"fused vs reference QAT fake-quant, forward + backward, float32, {device}", header]
    lines += [
        f"{r['name']:<12} {r['shape']!s:<20} {r['fused_ms']:>9.3f} {r['ref_ms']:>9.3f} "
        f"{r['ref_ms'] / r['fused_ms']:>7.2f}x {r['fused_gbs']:>10.0f} {r['ref_gbs']:>9.0f} "
        f"{'yes' if r['equal'] else 'NO':>9} {r['grad_rel']:>13.1e}"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interpret", action="store_true", help="CPU smoke run (TRITON_INTERPRET)")
    args = parser.parse_args()
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels module is imported
        print(render(measure(SMOKE_CASES, torch.device("cpu"), 1, 2), "CPU interpreter (smoke)"))
        return
    if not torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        print("fused-kernel benchmark skipped: needs a CUDA device and triton (pip install .[gpu])")
        return
    print(render(measure(GPU_CASES, torch.device("cuda")), torch.cuda.get_device_name()))


if __name__ == "__main__":
    main()
