"""A layer's quantization parameters and input ranges, as the doctor used and recorded them.

``scale_d``/``offset_d`` are the record's when it has them (``params_source: "record"``, on the
grid of its ``act_type``), else the doctor's IFMR/HFMG calibration on ``input_data`` (on the
config's ``num_bits``); ``act_bits`` is that grid's width; ``scale_w`` is ARQ on the (folded,
balanced) weight. The record's own fields are shown as they are. The input ranges were recorded
on the balanced input ``X / s``; the unbalanced ones are those times ``s``.
"""

from __future__ import annotations

import dataclasses

from qdqforge.front.analysis.doctor.channels import ChannelRanges
from qdqforge.front.analysis.doctor.layer_report import RECORD_FIELDS
from qdqforge.front.analysis.doctor.probe_model import ProbeModel
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.record.file import LayerRecord


def layer_params(
    probe: ProbeModel, name: str, config: QuantConfig, records: dict[str, LayerRecord]
) -> dict:
    """The :class:`LayerReport` fields beyond the fidelities (module docstring)."""
    act = probe.probes[name]
    seen = ChannelRanges(act.lo, act.hi)
    factors = probe.factors.get(name)
    rec = records.get(name)
    from_record = rec is not None and rec.scale_d is not None and rec.offset_d is not None
    return {
        "channels": seen if factors is None else seen.scaled(factors),
        "balanced": None if factors is None else seen,
        "dmq_alpha": config.layer(name).dmq_balancer_param if factors is not None else None,
        "scale_d": act.scale,
        "offset_d": act.offset,
        "act_bits": act.num_bits,
        "scale_w": probe.scale_w.get(name, ()),
        "params_source": "record" if from_record else "input_data",
        "record": None if rec is None else _record_fields(rec),
    }


def _record_fields(rec: LayerRecord) -> dict:
    values = dataclasses.asdict(rec)
    return {key: _plain(values[key]) for key in RECORD_FIELDS}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
