"""``UlqActQuantOp``: ULQ activation fake quantization with learnable clips (docs/amct.md §4.5).

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
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.kernels.ulq import (
    sanitize_clips,
    ulq_clips_from_scale,
    ulq_scale,
    ulq_scale_offset,
)
from qdqforge.runtime.kernels.ulq_dispatch import ulq_act_fake_quant
from qdqforge.runtime.modules.qat_act_cpu import valid_clips_cpu

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
            return valid_clips_cpu(self)
        clip_max, clip_min = self.clips()
        if not self.training or self._is_replica:
            return clip_max, clip_min  # a DataParallel replica's tensors are broadcast copies
        with torch.no_grad():
            self.clip_max.copy_(clip_max)
            if self.clip_min is not None:
                self.clip_min.copy_(clip_min)
            self.prev_clips.copy_(torch.stack([clip_max, clip_min]))
        return self.clip_max, self.clip_min if self.clip_min is not None else self.prev_clips[1]

    def scale(self, clip_max=None, clip_min=None) -> torch.Tensor:
        """``s = (clip_max - clip_min) / (2^b - 1)`` (the current clips by default)."""
        clip_max = self.clip_max if clip_max is None else clip_max
        if clip_min is None:
            clip_min = self.clip_min if self.clip_min is not None else 0.0
        return ulq_scale(clip_max, clip_min, self.num_bits)

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
