"""Search-N / ``shift_bit`` (docs/amct.md §4.6, from AMCT's older C++ code), per channel ``c``::

    s32     = int32-domain layer output (round(y / deq_scale[c]), clamped to int32)
    err[N,c] = sum over batches and positions of (clip(floor(s32 / 2^N), int16) * 2^N - s32)^2
    N*[c]   = argmin over N in 1..16 (the smallest N on ties)

i.e. the right shift that lets the int32 accumulator be carried as int16 with least error.
The accumulator ``err`` is ``[16, C]`` float64 whatever the number of batches; each term is
exact in int32 (``floor`` is an arithmetic right shift) before it is squared and summed in
float64.
For DDP, all-reduce (sum) ``SearchNObserver.error`` before ``compute``.

On CPU the per-value part of each shift (shift, clamp, shift back, difference, square) is one
compiled pass (``qdqforge_obs.search_n_squares``, ``csrc/observe_cpu.cpp``) with the same values
bit for bit; the row sums stay torch's on the same shapes, so the errors are the torch path's
(tests/runtime/kernels/test_kernels_search_n.py). ``QDQFORGE_FUSED=0``, other devices and a
machine where the kernels could not be built take the torch path.
"""

from __future__ import annotations

import torch

from qdqforge.errors import CalibrationError
from qdqforge.runtime.kernels import cpu_ext

MAX_SHIFT = 16
_INT16 = (-(2**15), 2**15 - 1)
_INT32 = (-(2**31), 2**31 - 1)


def shift_errors(s32: torch.Tensor, channel_axis: int = 1) -> torch.Tensor:
    """``[16, C]`` summed squared error of every shift ``N = 1..16`` for one batch.

    Args:
        s32: int32-domain output ``[N, C, ...]`` (integer or integer-valued float tensor).
        channel_axis: axis of the output channels.

    Returns:
        float64 tensor, row ``N - 1`` for shift ``N``.
    """
    if s32.is_floating_point():
        s32 = torch.round(s32)
    s32 = s32.to(torch.int64).clamp(*_INT32).to(torch.int32)
    rows = s32.movedim(channel_axis, 0).reshape(s32.shape[channel_axis], -1).contiguous()
    squares = torch.empty(rows.shape, dtype=torch.float64, device=rows.device)  # one buffer
    ops = cpu_ext.observer_ops() if rows.is_cpu else None
    shifts = range(1, MAX_SHIFT + 1)
    return torch.stack([_squared_error_sums(rows, n, squares, ops) for n in shifts])


def _squared_error_sums(rows: torch.Tensor, n: int, squares: torch.Tensor, ops) -> torch.Tensor:
    """``sum((clip(rows >> n, int16) << n - rows)^2, dim=1)``, the squares in ``squares``
    (computed by the compiled ``ops`` when given).

    int32 holds every step (``32767 << 16`` and ``-32768 << 16`` fit; ``carried`` has the sign
    of ``rows`` and at most its magnitude, or is 0 where ``|rows| < 2^n``, so ``carried - rows``
    fits too): the differences are the int64 ones exactly, and their squares and row sums are
    computed in float64 as before, bit for bit, with half the memory traffic. The float64
    buffer is the caller's, reused for every shift (a new 26 MB one per shift of a layer of
    3.2 M outputs: 69 ms for the 16 shifts with the compiled pass, 44 ms with one buffer).
    """
    if ops is not None:
        return ops.search_n_squares(rows, n, squares).sum(dim=1)
    carried = torch.bitwise_right_shift(rows, n).clamp_(*_INT16)
    carried.bitwise_left_shift_(n).sub_(rows)
    squares.copy_(carried)
    return squares.mul_(squares).sum(dim=1)


class SearchNObserver:
    """Streaming search-N: ``update`` per int32 output batch, ``compute`` the shifts."""

    def __init__(self, channels: int, channel_axis: int = 1, layer: str | None = None) -> None:
        self.channels, self.channel_axis, self.layer = channels, channel_axis, layer
        self.error = torch.zeros(MAX_SHIFT, channels, dtype=torch.float64)
        self.batches = 0

    def update(self, s32: torch.Tensor) -> None:
        """Accumulate one batch of the int32-domain output.

        Raises:
            CalibrationError: wrong channel count, or NaN/inf values.
        """
        if s32.shape[self.channel_axis] != self.channels:
            raise CalibrationError(
                f"layer '{self.layer}': search-N expects {self.channels} output channels on "
                f"axis {self.channel_axis}, got shape {tuple(s32.shape)}"
            )
        if s32.is_floating_point() and not bool(torch.isfinite(s32).all()):
            raise CalibrationError(f"layer '{self.layer}': search-N output holds NaN or inf")
        self.error = self.error.to(s32.device) + shift_errors(s32.detach(), self.channel_axis)
        self.batches += 1

    def compute(self, per_channel: bool = True) -> torch.Tensor:
        """The shift ``N`` in 1..16 per channel (``[C]`` int64).

        Args:
            per_channel: one N per channel; else the N minimizing the summed error, repeated.

        Raises:
            CalibrationError: no batch was seen.
        """
        if self.batches == 0:
            raise CalibrationError(f"layer '{self.layer}': search-N saw no output batch")
        if per_channel:
            return torch.argmin(self.error, dim=0) + 1
        best = torch.argmin(self.error.sum(dim=1)) + 1
        return best.repeat(self.channels)
