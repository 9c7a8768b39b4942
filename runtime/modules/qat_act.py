"""``UlqActQuantOp``: ULQ activation fake quantization with learnable clips (AMCT spec §4.5).

State (all in ``state_dict``, so a restored model resumes exactly):

* ``clip_max`` and, unless ``fixed_min``, ``clip_min``: 0-d ``nn.Parameter``; the grid is
  ``s = (clip_max - clip_min) / (2^b - 1)``, ``o = round(qmin - clip_min / s)`` and the gradients
  are AMCT's (:func:`~qdqforge.runtime.kernels.ulq.ulq_act_fake_quant`; fused on CUDA by
  :mod:`~qdqforge.runtime.kernels.ulq_dispatch`).
* ``initialized``: the clips came from the config or from IFMR (symmetric, default parameters)
  over the first ``batch_num`` forwards, in any mode. Until then the op is the identity, and the
  clips join the output with weight 0 so DDP sees every parameter used. Under DDP each
  initialization batch is all-gathered, so every rank computes the same clips.
* ``prev_clips``: the last valid clips. A training forward first replaces an invalid clip
  (``clip_max < 0``, ``clip_min > 0``, range below FLT_EPSILON) by it, in place (not in a
  DataParallel replica: writing into its broadcast copies would break autograd, AMCT's
  "BroadcastBackward in-place" error; there the fallback only applies to the forward).

``forward(x) -> (y, scale)``; ``scale`` (detached; None before initialization and in training
mode, where search-N gathers nothing) feeds search-N.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.errors import QdqforgeError
from qdqforge.runtime import distributed
from qdqforge.runtime.kernels.ifmr import IfmrObserver
from qdqforge.runtime.kernels.ulq import (
    clearly_valid_clips,
    sanitize_clips,
    sanitize_scalar_clips,
    ulq_clips_from_scale,
    ulq_scale_offset,
)
from qdqforge.runtime.kernels.ulq_dispatch import ulq_act_fake_quant

REPLICA_ERROR = (
    "layer '{layer}': a DataParallel replica cannot keep {what} (replicas are thrown away after "
    "each forward); use DistributedDataParallel, or run the forwards without DataParallel first"
)


class UlqActQuantOp(nn.Module):
    """ULQ fake quantization of one layer's input (module docstring)."""

    _is_replica = False  # DataParallel's replicate() sets it on its copies

    def __init__(self, layer: str, num_bits: int, fixed_min: bool, batch_num: int,
                 clips: tuple[float, float] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.layer, self.num_bits, self.fixed_min, self.batch_num = (
            layer, num_bits, fixed_min, batch_num
        )  # fmt: skip
        clip_max, clip_min = clips if clips is not None else (1.0, -1.0)
        clip_min = 0.0 if fixed_min else clip_min
        self.clip_max = nn.Parameter(torch.tensor(float(clip_max)))
        self.clip_min = None if fixed_min else nn.Parameter(torch.tensor(float(clip_min)))
        self.register_buffer("initialized", torch.tensor(clips is not None))
        self.register_buffer("init_batches", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("prev_clips", torch.tensor([float(clip_max), float(clip_min)]))
        self._ready: bool | None = clips is not None
        self._observer: IfmrObserver | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.ready:
            self._observe(x)
            if not self.ready:
                return x + 0.0 * self._clip_sum(), None
        clip_max, clip_min = self.valid_clips()
        y = ulq_act_fake_quant(x, clip_max, clip_min, self.num_bits, self.fixed_min)
        return y, None if self.training else self.scale(clip_max, clip_min).detach()

    @property
    def ready(self) -> bool:
        """True once the clips are initialized (one device sync until then, none after)."""
        if not self._ready:
            self._ready = bool(self.initialized)
        return self._ready

    def quant_grid(self) -> tuple[float, int]:
        """``(scale_d, offset_d)`` of the current clips: the grid ``save`` verification reads."""
        with torch.no_grad():
            scale, offset = ulq_scale_offset(*self.clips(), self.num_bits)
        return float(scale), int(offset)

    def clips(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clip_max, clip_min)`` after AMCT's fallbacks, without changing any state."""
        current_min = self.clip_min if self.clip_min is not None else self.prev_clips[1]
        return sanitize_clips(
            self.clip_max, current_min, self.prev_clips[0], self.prev_clips[1], self.num_bits
        )

    def valid_clips(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`clips`; in training mode they are also written back (params, prev_clips)."""
        if self.clip_max.is_cpu:
            return self._valid_clips_cpu()
        clip_max, clip_min = self.clips()
        if not self.training or self._is_replica:
            return clip_max, clip_min  # a DataParallel replica's tensors are broadcast copies
        with torch.no_grad():
            self.clip_max.copy_(clip_max)
            if self.clip_min is not None:
                self.clip_min.copy_(clip_min)
            self.prev_clips.copy_(torch.stack([clip_max, clip_min]))
        return self.clip_max, self.clip_min if self.clip_min is not None else self.prev_clips[1]

    def _valid_clips_cpu(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`valid_clips` on Python floats (on CPU ``.item()`` costs no sync, and a handful
        of scalar tensor ops would cost more than the quantization of a small activation)."""
        current = self.clip_max.item(), (0.0 if self.clip_min is None else self.clip_min.item())
        params = self.clip_max, (self.prev_clips[1] if self.clip_min is None else self.clip_min)
        if not clearly_valid_clips(*current, self.num_bits):
            return self._sanitized_clips_cpu(current, params)
        if self.training and not self._is_replica:
            self._remember_cpu(current)
        return params

    def _remember_cpu(self, clips: tuple[float, float]) -> None:
        """Store valid clips in ``prev_clips``; through numpy (the buffer's own memory, no tensor
        op per training step; the view is kept while the buffer is the same tensor) for the float
        dtypes numpy shares."""
        buffer = self.prev_clips
        if buffer.dtype not in (torch.float32, torch.float64):
            if buffer.tolist() != list(clips):
                buffer.copy_(torch.tensor(clips, dtype=buffer.dtype))
            return
        if self.__dict__.get("_prev_view_of") is not buffer:
            self.__dict__.update(_prev_view=buffer.numpy(), _prev_view_of=buffer)
        prev = self._prev_view
        if prev[0] != clips[0] or prev[1] != clips[1]:
            prev[:] = clips

    def _sanitized_clips_cpu(self, current, params) -> tuple[torch.Tensor, torch.Tensor]:
        prev = self.prev_clips.tolist()
        current = current if self.clip_min is not None else (current[0], prev[1])
        valid = sanitize_scalar_clips(*current, *prev, self.num_bits)
        if not self.training or self._is_replica:
            return tuple(p if v == c else torch.tensor(v, dtype=p.dtype)
                         for p, v, c in zip(params, valid, current))  # fmt: skip
        with torch.no_grad():
            for param, value, old in zip((self.clip_max, self.clip_min), valid, current):
                if param is not None and value != old:
                    param.fill_(value)
            if list(valid) != prev:
                self.prev_clips.copy_(torch.tensor(valid, dtype=self.prev_clips.dtype))
        return params

    def scale(self, clip_max=None, clip_min=None) -> torch.Tensor:
        """``s = (clip_max - clip_min) / (2^b - 1)`` (the current clips by default)."""
        clip_max = self.clip_max if clip_max is None else clip_max
        if clip_min is None:
            clip_min = self.clip_min if self.clip_min is not None else 0.0
        return (clip_max - clip_min) / (2**self.num_bits - 1)

    def _clip_sum(self) -> torch.Tensor:
        return self.clip_max if self.clip_min is None else self.clip_max + self.clip_min

    def _observe(self, x: torch.Tensor) -> None:
        if self._is_replica:
            raise QdqforgeError(REPLICA_ERROR.format(layer=self.layer, what="ULQ clip init"))
        if self._observer is None:
            self._observer = IfmrObserver(
                num_bits=self.num_bits, symmetric=True, expected_batches=self.batch_num,
                layer=self.layer,
            )  # fmt: skip
        self._observer.update(distributed.all_gather_flat(x))
        self.init_batches += 1
        if int(self.init_batches) >= self.batch_num:
            params = self._observer.compute()
            self.set_clips(*ulq_clips_from_scale(params.scale, params.offset, self.num_bits))
            self._observer = None

    @torch.no_grad()
    def set_clips(self, clip_max: float, clip_min: float) -> None:
        """Set both clips (``clip_min`` is ignored with ``fixed_min``) and mark initialized."""
        clip_min = 0.0 if self.fixed_min else clip_min
        self.clip_max.fill_(clip_max)
        if self.clip_min is not None:
            self.clip_min.fill_(clip_min)
        self.prev_clips.copy_(torch.tensor([clip_max, clip_min]))
        self.initialized.fill_(True)
        self._ready = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._ready, self._observer = None, None

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, num_bits={self.num_bits}, fixed_min={self.fixed_min}"
