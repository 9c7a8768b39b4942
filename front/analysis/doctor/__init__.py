"""The quantization doctor: per-layer SQNR/cosine, weight vs activation sensitivity, input
channel ranges before/after DMQ, record values and skip advice (:func:`analyze`)."""

from __future__ import annotations

from qdqforge.front.analysis.doctor.analyze import analyze
from qdqforge.front.analysis.doctor.report import Report

__all__ = ["Report", "analyze"]
