"""Part (a) of ``bench/qat.py``: QAT train-step time relative to the FP32 eager step.

One step is forward + cross-entropy + backward + SGD step on a fixed batch of 64. Variants of a
model are timed interleaved (FP32, qdqforge QAT, torch.ao QAT, FP32, ...) after warm-up steps
that also run the QAT clip initialization, and each variant's median is divided by FP32's.
torch.ao's ``prepare_qat_fx`` (x86 default QAT qconfig mapping) is the external baseline; the
product never imports torch.ao, only this benchmark does.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import qdqforge as amct
from bench.qat_rows import Row
from tests.helpers.torch_models import build

TARGET_RATIO = 1.15
# name: (input shape, classes, timed-step multiplier: the ~15 ms transformer step needs more
# samples than the ~200 ms ResNet step for a stable median on a loaded machine)
MODELS = {"resnet": ((64, 3, 32, 32), 10, 1), "transformer": ((64, 16, 12), 5, 5)}


def sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x, y) -> float:
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def qdqforge_qat(model: torch.nn.Module, x: torch.Tensor, folder: Path) -> torch.nn.Module:
    cfg, record = str(folder / "qat.json"), str(folder / "record.txt")
    amct.create_quant_retrain_config(cfg, model, x)
    return amct.create_quant_retrain_model(cfg, model, record, x)


def torch_ao_qat(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    return prepare_qat_fx(
        copy.deepcopy(model).train(), get_default_qat_qconfig_mapping("x86"), (x,)
    )


def variants(name: str, x: torch.Tensor, folder: Path) -> tuple[dict, dict]:
    """``{label: module}`` to time and ``{label: error}`` for the ones that failed to build."""
    model, _ = build(name)
    modules, errors = {"FP32 eager": copy.deepcopy(model)}, {}
    modules["qdqforge QAT"] = qdqforge_qat(model, x, folder)
    try:
        modules["torch.ao prepare_qat_fx"] = torch_ao_qat(model, x)
    except Exception as e:  # the baseline failing is a result to report, not a crash
        errors["torch.ao prepare_qat_fx"] = f"{type(e).__name__}: {str(e).splitlines()[0][:60]}"
    return modules, errors


def interleaved_medians(modules: dict, x, y, warmup: int, repeats: int) -> dict[str, list]:
    """Per variant: the step times after ``warmup`` rounds of A B C A B C ..."""
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in modules.items()}
    times = {k: [] for k in modules}
    for m in modules.values():
        m.train()
    for i in range(warmup + repeats):
        for k, m in modules.items():
            elapsed = sgd_step(m, opts[k], x, y)
            if i >= warmup:
                times[k].append(elapsed)
    return times


def spread(ts: list[float]) -> str:
    q = statistics.quantiles(ts, n=4)
    return f"{statistics.median(ts) * 1e3:.1f} ms [{q[0] * 1e3:.0f}-{q[2] * 1e3:.0f}]"


def model_rows(name: str, warmup: int, repeats: int) -> list[Row]:
    shape, classes, factor = MODELS[name]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(shape, generator=gen), torch.randint(0, classes, shape[:1], generator=gen)
    with tempfile.TemporaryDirectory() as folder:
        modules, errors = variants(name, x, Path(folder))
        times = interleaved_medians(modules, x, y, warmup, repeats * factor)
    base = statistics.median(times["FP32 eager"])
    what = f"{name} b{shape[0]}"
    rows = []
    for label, ts in times.items():
        ratio = statistics.median(ts) / base
        target, met = "", ""
        if label == "qdqforge QAT":
            target, met = f"<= {TARGET_RATIO}x", "met" if ratio <= TARGET_RATIO else "MISSED"
        elif label.startswith("torch.ao"):
            target = "(issue: 1.45x)"
        rows.append(Row("a", f"{what} {label}", f"{spread(ts)}  {ratio:.2f}x", target, met))
    rows += [Row("a", f"{what} {label}", f"failed: {err}", "", "") for label, err in errors.items()]
    return rows


def timing_rows(warmup: int, repeats: int) -> list[Row]:
    return [row for name in MODELS for row in model_rows(name, warmup, repeats)]


def profile_top(name: str, steps: int = 3, rows: int = 12) -> str:
    """torch.profiler's top ops by self CPU time over ``steps`` QAT steps (after warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    shape, classes, _ = MODELS[name]
    x, y = torch.randn(shape), torch.randint(0, classes, shape[:1])
    with tempfile.TemporaryDirectory() as folder:
        qat = qdqforge_qat(build(name)[0], x, Path(folder)).train()
    opt = torch.optim.SGD(qat.parameters(), lr=1e-3, momentum=0.9)
    for _ in range(2):
        sgd_step(qat, opt, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            sgd_step(qat, opt, x, y)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"{name}: qdqforge QAT, {steps} steps\n{table}"
