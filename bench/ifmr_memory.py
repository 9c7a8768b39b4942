"""Bounded-memory check of IFMR calibration: peak RSS for 32 batches vs 1 batch.

Each count runs in a fresh interpreter (``python -m bench.ifmr_memory N``) so ``ru_maxrss`` is
that calibration's own peak. The model is chosen so activations dominate: three 32-channel 3x3
convs on 16x3x128x128 batches; each batch puts 2 x 33.5 MB on the inputs of the last two
layers, so an observer keeping every batch (AMCT's concatenation) would hold 2.1 GB after 32
batches. Target: peak(32) <= 1.2 x peak(1).

The export before calibration has its own peak (~0.8 GB) that could hide a modest calibration
in the process's ``ru_maxrss``, so the calibration phase is measured alone: the kernel's
high-water mark (``VmHWM``, which ``ru_maxrss`` reports too) is read after the export, reset
through ``/proc/self/clear_refs`` right after ``quantize_model``, and read again after the last
forward. The target is judged on the calibration peaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

BATCH = (16, 3, 128, 128)
ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.2


def activation_heavy_model() -> nn.Module:
    """Conv-ReLU x3 at full resolution, 32 channels."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
    ).eval()  # fmt: skip


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(x for x in handle if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux >= 4.0: VmHWM := VmRSS


def calibrate(batches: int, workdir: Path) -> dict:
    """Run create_quant_config + quantize_model + ``batches`` IFMR forwards.

    Batches are drawn one at a time so the script itself never holds more than one.

    Returns:
        ``{"seconds", "setup_peak_mb", "calib_start_mb", "calib_peak_mb"}``: peak RSS of the
        config + export steps, RSS when calibration starts, peak RSS during calibration.
    """
    import qdqforge as amct

    model, gen = activation_heavy_model(), torch.Generator().manual_seed(1)
    example = torch.randn(*BATCH, generator=gen)
    cfg, record = str(workdir / "c.json"), str(workdir / "r.txt")
    start = time.perf_counter()
    amct.create_quant_config(cfg, model, example, batch_num=batches)
    calib = amct.quantize_model(cfg, str(workdir / "m.onnx"), record, model, example)
    del example
    setup_peak = _status_mb("VmHWM")
    _reset_peak()
    before = _status_mb("VmRSS")
    with torch.no_grad():
        for _ in range(batches):
            calib(torch.randn(*BATCH, generator=gen))
    peak = _status_mb("VmHWM")
    return {
        "seconds": time.perf_counter() - start,
        "setup_peak_mb": setup_peak,
        "calib_start_mb": before,
        "calib_peak_mb": peak,
    }


def measure(batches: int) -> dict:
    """:func:`calibrate`'s dict plus ``"batches"``, from a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ifmr_memory", str(batches)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Subprocess entry: calibrate, then print one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        result = calibrate(int(sys.argv[1]), Path(tmp))
    result.update(batches=int(sys.argv[1]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()


def memory_rows(counts: tuple[int, int] = (1, 32)):
    """Two table rows: peaks for ``counts[0]`` and ``counts[1]`` batches, the ratio judged."""
    from bench.ptq_rows import Row

    one, many = (measure(n) for n in counts)
    ratio = many["calib_peak_mb"] / one["calib_peak_mb"]
    rows = []
    for result, judged in ((one, ""), (many, "met" if ratio <= TARGET_RATIO else "missed")):
        cell = f"calib peak {result['calib_peak_mb']:.0f} MB"
        if judged:
            cell += f" = {ratio:.2f}x"
        rows.append(Row(
            "IFMR memory", f"IFMR {result['batches']} batch(es) of {BATCH[0]}", cell,
            target=judged, seconds=f"{result['seconds']:.1f}",
            rss_mb=f"{result['calib_peak_mb'] - result['calib_start_mb']:.0f}",
            note=f"export/config peak before calibration {result['setup_peak_mb']:.0f} MB",
        ))  # fmt: skip
    return rows
