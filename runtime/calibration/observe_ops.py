"""The compiled calibration passes (``csrc/observe_cpu.cpp``) for the IFMR and HFMG observers.

Two C++ passes per batch replace the observers' chains of torch ops: the NaN/inf count,
``max |x|`` and IFMR's two tails (a heap per tail instead of two ``topk``; blocks that cannot
enter a tail are skipped) in one, IFMR's histogram in the other; and, when the observers
compute, the per-bin error of each IFMR grid candidate and HFMG window, and HFMG's greedy
window list. Each kernel computes the same IEEE
double operations in the same order as the torch code it replaces, and row sums stay with torch
on the same shapes, so states, losses and the chosen scale/offset are bit for bit the torch
path's (tests/runtime/calibration/test_observe_ops.py compares them).

The kernels take CPU floating-point batches; GPU batches, ``QDQFORGE_FUSED=0`` (the switch of
the compiled QAT kernels) and a machine where the kernels could not be built take the torch
path.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from qdqforge.runtime.kernels import cpu_ext
from qdqforge.runtime.kernels.quant_math import nonfinite_error

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
TAIL_HEAP_LIMIT = 4096  # larger tails (low percentiles) use torch.topk: a heap would churn
SERIAL_ROW = 32768  # torch reduces a row up to its grain size (32768) serially, in one order


def observe_ops(x: torch.Tensor | None = None) -> SimpleNamespace | None:
    """The compiled ops when ``x`` (if given) can take them, else None."""
    if x is not None and (not x.is_cpu or x.dtype not in _DTYPES):
        return None
    return cpu_ext.observer_ops()


def checked_scan(ops, flat: torch.Tensor, layer: str | None, takes=(0, 0)):
    """``(max |flat|, top, bottom)`` after the NaN/inf check, in one pass; ``top``/``bottom``
    hold the ``takes`` largest values and smallest values negated (float64, descending).

    Raises:
        CalibrationError: ``flat`` holds NaN or inf (the message of ``check_finite``).
    """
    absmax, bad, top, bottom = ops.scan(flat, *takes)
    if bad:
        raise nonfinite_error(int(bad), flat.numel(), layer)
    return float(absmax), top, bottom


def row_sums(err: torch.Tensor) -> torch.Tensor:
    """``err.sum(dim=1)`` bit for bit, one row at a time off torch's thread pool.

    For rows of at most 32768 values torch's reduction is serial and the same cascade whether
    the row stands alone or in a batch of rows (tests/runtime/calibration/test_observe_ops.py);
    summing row by row keeps the candidates' losses while a loaded machine's thread pool cannot
    stall the reduction (measured 13 ms per [8, 32768] sum at load 7 on 2 cores, 0.1 ms here).
    """
    if err.shape[1] > SERIAL_ROW:
        return err.sum(dim=1)
    return torch.stack([row.sum() for row in err]) if len(err) else err.sum(dim=1)
