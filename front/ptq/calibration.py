"""Bookkeeping around the ``quantize_model`` calibration module's forwards.

After every forward, :class:`CalibrationRecorder` (a forward hook) advances a progress bar over
the ``batch_num`` calibration batches (tqdm; off when stderr is not a TTY or
``QDQFORGE_PROGRESS=0``), writes ``<record>.calibration.json`` (``batch_num``, batches seen) so
``save_model`` can say how far calibration got, and, once the observers are done, writes every
layer's ``scale_d``/``offset_d`` to the record in one atomic rewrite, with ``act_type: "INT16"``
for a 16-bit layer (``offset_d`` is then an int16 zero point; INT8 layers leave the field out,
AMCT's default). The observer of a MatMul's second operand (``<layer>.input_1``,
:mod:`qdqforge.graph.activation_matmul`) gives ``scale_h``/``offset_h`` of ``<layer>``'s entry.
That rewrite first checks that every layer's ``scale_w`` is still the one
``quantize_model`` wrote with this module: two flows sharing one record path would otherwise
leave this model's activation scales beside another model's weight scales (``save_model`` then
refuses the weights off that grid, but a same-shaped model's scales could pass). A layer whose
calibration data were all zero has no range to quantize: a CalibrationError names it (AMCT
silently uses scale 1). ``before_scales`` (AdaRound, :mod:`qdqforge.front.ptq.adaround`) runs
on the module after that check and before the scales are written, so a record with ``scale_d``
always has its weights final.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from torch import nn
from tqdm import tqdm

from qdqforge.errors import CalibrationError
from qdqforge.front.record.file import update_records
from qdqforge.graph.activation_matmul import layer_of_input
from qdqforge.graph.io import atomic_write_text
from qdqforge.passes.grids.act_grid import act_type_field
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp


def progress_path(record_file: str | os.PathLike) -> Path:
    """``<record>.calibration.json``: how many calibration batches the module has seen."""
    return Path(f"{os.fspath(record_file)}.calibration.json")


def read_progress(record_file: str | os.PathLike) -> dict | None:
    """``{"batch_num": N, "batches_seen": k}`` or None when no calibration module ran."""
    try:
        return json.loads(progress_path(record_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def progress_disabled() -> bool | None:
    """tqdm's ``disable``: True when ``QDQFORGE_PROGRESS=0``; None lets tqdm decide (a TTY)."""
    return True if os.environ.get("QDQFORGE_PROGRESS", "1") == "0" else None


class CalibrationRecorder:
    """Forward hook of the calibration module (see the module docstring)."""

    def __init__(
        self,
        record_file: str | os.PathLike,
        batch_num: int,
        before_scales: Callable[[nn.Module], None] | None = None,
        own_scale_w: dict[str, list[float]] | None = None,
    ) -> None:
        self.record_file, self.batch_num = record_file, batch_num
        self.before_scales, self.own_scale_w = before_scales, own_scale_w or {}
        self.done, self.bar = False, None
        self._write_progress(0)

    def __call__(self, module: nn.Module, args, output) -> None:
        if self.done:
            return
        observers = [op for op in module.modules() if isinstance(op, ActObserverOp)]
        seen = min((op.batches for op in observers), default=self.batch_num)
        self._advance(seen)
        self._write_progress(seen)
        if all(op.params is not None for op in observers):
            _check_ranges(observers)
            if self.before_scales is not None:
                self.before_scales(module)
            self._write_scales(observers)
            self.done = True

    def _advance(self, seen: int) -> None:
        if self.bar is None:
            disable = progress_disabled()
            self.bar = tqdm(total=self.batch_num, desc="calibration", unit="batch", disable=disable)
        self.bar.update(seen - self.bar.n)
        if seen >= self.batch_num:
            self.bar.close()

    def _write_progress(self, seen: int) -> None:
        text = json.dumps({"batch_num": self.batch_num, "batches_seen": seen})
        atomic_write_text(progress_path(self.record_file), text + "\n")

    def _write_scales(self, observers: list[ActObserverOp]) -> None:
        updates: dict[str, dict] = {}
        for op in observers:
            layer = layer_of_input(op.layer)
            fields = ("scale_d", "offset_d") if layer == op.layer else ("scale_h", "offset_h")
            entry = updates.setdefault(layer, {})
            entry.update(zip(fields, (op.params.scale, op.params.offset), strict=True))
            entry["act_type"] = act_type_field(op.num_bits)
        update_records(self.record_file, updates, expect_scale_w=self.own_scale_w)


def _check_ranges(observers: list[ActObserverOp]) -> None:
    for op in observers:
        if op.params.clip_max == op.params.clip_min:
            raise CalibrationError(
                f"layer '{op.layer}': every calibration activation was "
                f"{op.params.clip_max:g} (zero range), so it has no integer grid; calibrate "
                f"with data that reach this layer or add '{layer_of_input(op.layer)}' to "
                "skip_layers"
            )
