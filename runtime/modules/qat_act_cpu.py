"""``UlqActQuantOp.valid_clips`` on CPU, in Python floats: on CPU ``.item()`` costs no device
sync, and the handful of scalar tensor ops of the device path would cost more than quantizing a
small activation with the compiled kernel.

Per forward: read both clips; when :func:`~qdqforge.runtime.kernels.ulq.clearly_valid_clips`
says AMCT's fallbacks keep them (always, short of a diverging run), a training forward stores them
in ``prev_clips`` through a kept numpy view of the buffer (no tensor op per step). Otherwise
:func:`~qdqforge.runtime.kernels.ulq.sanitize_scalar_clips` decides in float32, as the device
path does, and a training forward writes the fallback values back (not in a DataParallel replica).
"""

from __future__ import annotations

import torch

from qdqforge.runtime.kernels.ulq import clearly_valid_clips, sanitize_scalar_clips


def valid_clips_cpu(op) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clip_max, clip_min)`` tensors of a CPU ``UlqActQuantOp`` after AMCT's fallbacks."""
    clip_max, clip_min = op.clip_max, op.clip_min
    current = clip_max.item(), (0.0 if clip_min is None else clip_min.item())
    params = clip_max, (op.prev_clips[1] if clip_min is None else clip_min)
    if not clearly_valid_clips(*current, op.num_bits):
        return _sanitized(op, current, params)
    if op.training and not op._is_replica:
        _remember(op, current)
    return params


def _remember(op, clips: tuple[float, float]) -> None:
    """Store valid clips in ``prev_clips``; for float32/64 through a numpy view of the buffer's
    memory kept on the op with that memory's address (a copied or replaced buffer lives
    elsewhere, so it gets a new view; the view keeps its memory alive, so no other buffer can
    reuse the address meanwhile)."""
    buffer = op.prev_clips
    cached = op.__dict__.get("_prev_view")
    if cached is None or cached[0] != buffer.data_ptr():
        if buffer.dtype not in (torch.float32, torch.float64):
            if buffer.tolist() != list(clips):
                buffer.copy_(torch.tensor(clips, dtype=buffer.dtype))
            return
        cached = op.__dict__["_prev_view"] = (buffer.data_ptr(), buffer.numpy())
    view = cached[1]
    if view[0] != clips[0] or view[1] != clips[1]:
        view[:] = clips


def _sanitized(op, current, params) -> tuple[torch.Tensor, torch.Tensor]:
    prev = op.prev_clips.tolist()
    current = current if op.clip_min is not None else (current[0], prev[1])
    valid = sanitize_scalar_clips(*current, *prev, op.num_bits)
    if not op.training or op._is_replica:
        return tuple(p if v == c else torch.tensor(v, dtype=p.dtype)
                     for p, v, c in zip(params, valid, current))  # fmt: skip
    with torch.no_grad():
        for param, value, old in zip((op.clip_max, op.clip_min), valid, current):
            if param is not None and value != old:
                param.fill_(value)
        if list(valid) != prev:
            op.prev_clips.copy_(torch.tensor(valid, dtype=op.prev_clips.dtype))
    return params
