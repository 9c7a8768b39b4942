"""What the doctor found about one layer (see :mod:`qdqforge.front.analysis.doctor.analyze`).

Every fidelity is the whole model's output against the float model's, with only part of the
model fake-quantized: ``quantized`` (this layer's weight and activation), ``weight_only``,
``activation_only`` and ``without`` (every analyzed layer but this one: the model's fidelity if
this layer were skipped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from qdqforge.front.analysis.doctor.channels import ChannelRanges
from qdqforge.front.analysis.doctor.fidelity import Fidelity, json_float

RECORD_FIELDS = ("scale_d", "offset_d", "act_type", "scale_w", "offset_w", "shift_bit")


@dataclass(frozen=True)
class LayerReport:
    """One analyzed layer.

    Attributes:
        name: torch module name.
        layer_type: quantizable type (``Conv2d``, ``Linear``, ...).
        quantized: fidelity with only this layer quantized (weight and activation).
        weight_only: only this layer's weight quantized (None: no quantizable weight).
        activation_only: only this layer's input activation quantized.
        without: every analyzed layer quantized except this one.
        channels: per-channel range of the layer's input before DMQ balancing.
        balanced: the same after balancing (``X / s``); None without DMQ.
        dmq_alpha: ``dmq_balancer_param`` (None without DMQ).
        scale_d: activation scale the analysis used; offset_d likewise.
        scale_w: ARQ weight scales the analysis used.
        params_source: ``"record"`` when scale_d/offset_d came from the record, else
            ``"input_data"`` (calibrated by the doctor).
        record: the record's scale_d/offset_d/act_type/scale_w/offset_w/shift_bit, None
            without one.
        act_bits: bit width of the activation grid the analysis used (8, or 16 for INT16).
    """

    name: str
    layer_type: str
    quantized: Fidelity
    weight_only: Fidelity | None
    activation_only: Fidelity
    without: Fidelity
    channels: ChannelRanges
    balanced: ChannelRanges | None
    dmq_alpha: float | None
    scale_d: float
    offset_d: int
    scale_w: tuple[float, ...]
    params_source: str
    record: dict | None = None
    act_bits: int = 8

    @property
    def cause(self) -> str:
        """``"weight"`` when the weight alone hurts more than the activation alone."""
        if self.weight_only is None:
            return "activation"
        worse = self.weight_only.sqnr_db < self.activation_only.sqnr_db
        return "weight" if worse else "activation"

    def to_dict(self) -> dict:
        """JSON object (fidelities as objects, infinities as ``"inf"``)."""
        out = {"name": self.name, "layer_type": self.layer_type, "cause": self.cause}
        for key in ("quantized", "weight_only", "activation_only", "without"):
            value = getattr(self, key)
            out[key] = None if value is None else value.to_dict()
        out["channels"] = self.channels.to_dict()
        out["outlier_ratio"] = json_float(self.channels.outlier_ratio)
        out["balanced"] = None if self.balanced is None else self.balanced.to_dict()
        ratio = None if self.balanced is None else json_float(self.balanced.outlier_ratio)
        out["balanced_outlier_ratio"] = ratio
        out |= {"dmq_alpha": self.dmq_alpha, "scale_d": self.scale_d, "offset_d": self.offset_d}
        out |= {"scale_w": list(self.scale_w), "params_source": self.params_source}
        out["record"] = self.record
        out["act_bits"] = self.act_bits
        return out

    @classmethod
    def from_dict(cls, data: dict) -> LayerReport:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("quantized", "weight_only", "activation_only", "without"):
            values[key] = None if data[key] is None else Fidelity.from_dict(data[key])
        values["channels"] = ChannelRanges.from_dict(data["channels"])
        balanced = data["balanced"]
        values["balanced"] = None if balanced is None else ChannelRanges.from_dict(balanced)
        values["scale_w"] = tuple(data["scale_w"])
        return cls(**values)
