"""Calibration across processes: merge an IFMR or HFMG observer's state over the ranks.

Each rank calibrates on its shard; when an observer has seen its ``batch_num`` batches it calls
:func:`sync_observer` before computing, and every rank then holds the same state and computes
the same ``scale_d``/``offset_d``. The collectives run in graph order, once per observer, so
every rank must run the same number of calibration forwards. Nothing happens unless
``torch.distributed`` is initialized with more than one rank.

IFMR (what one process that saw every batch would hold):

* values seen: summed;
* the tails: every rank's kept values gathered and sorted, the largest evicted value maximized;
  with ``ranks`` set before the first batch each rank keeps enough for the merged ``k``, so the
  percentiles are exact (the same values one process finds);
* the histogram: each rank's bins widened to the largest radius (merging bin pairs, as one
  process does when its range grows), then summed. Counts are those of one process (up to a
  value within one rounding of a bin edge, binned at another radius); the float64 sums and
  square sums differ from one process's by summation order only (~1e-16 relative), so the
  candidate losses agree to ~1e-13 and the choice is the same unless two candidates tie that
  closely.

HFMG: every rank's histogram and range are gathered and merged in rank order with the same
re-binning one process applies batch by batch. One process merges batch by batch in another
order, so the merged histograms differ by re-binning round-off (HFMG's own approximation); the
clip range agrees within a few of the ``num_of_bins`` bins (tests/integration/
test_calibration_ddp.py measures it).
"""

from __future__ import annotations

import torch

from qdqforge.runtime import distributed
from qdqforge.runtime.calibration.hfmg import HfmgObserver
from qdqforge.runtime.calibration.ifmr import IfmrObserver


def sync_observer(observer: IfmrObserver | HfmgObserver) -> None:
    """Merge ``observer``'s state over the ranks (module docstring); a no-op on one process."""
    if not distributed.active():
        return
    if isinstance(observer, IfmrObserver):
        _sync_ifmr(observer)
    elif isinstance(observer, HfmgObserver):
        _sync_hfmg(observer)
    else:
        raise TypeError(f"no cross-rank merge for {type(observer).__qualname__}")


def _device(observer) -> torch.device:
    state = observer._hist.stats if isinstance(observer, IfmrObserver) else observer.hist
    return state.device if state is not None else torch.device("cpu")


def _sync_ifmr(observer: IfmrObserver) -> None:
    device, hist = _device(observer), observer._hist
    numel = torch.tensor([observer.numel], dtype=torch.int64, device=device)
    observer.numel = int(distributed.all_reduce_sum(numel))
    radius = torch.tensor([hist.radius], dtype=torch.float64, device=device)
    radius = float(distributed.all_reduce_max(radius))
    if hist.stats is None:
        hist.stats = torch.zeros(3, hist.bins, dtype=torch.float64, device=device)
    if radius > 0.0:
        hist.prepare(radius, device)  # a power of two: widens to exactly that radius
    distributed.all_reduce_sum(hist.stats)
    for tail in (observer._top, observer._bottom):
        mine = tail.values if tail.values is not None else torch.empty(0, dtype=torch.float64)
        values = distributed.all_gather_flat(mine.to(device))
        tail.values = torch.sort(values, descending=True).values if values.numel() else None
        evicted = torch.tensor([tail.evicted], dtype=torch.float64, device=device)
        tail.evicted = float(distributed.all_reduce_max(evicted))


def _sync_hfmg(observer: HfmgObserver) -> None:
    device = _device(observer)
    seen = observer.hist is not None
    bounds = torch.tensor([observer.lo, observer.hi, float(seen)], dtype=torch.float64)
    hist = observer.hist if seen else torch.zeros(observer.bins, dtype=torch.float64)
    every_bounds = distributed.all_gather_stack(bounds.to(device)).tolist()
    every_hist = distributed.all_gather_stack(hist.to(device))
    observer.hist, observer.lo, observer.hi = None, 0.0, 0.0
    for (lo, hi, rank_seen), rank_hist in zip(every_bounds, every_hist):
        if rank_seen:
            observer.merge(rank_hist, lo, hi)
