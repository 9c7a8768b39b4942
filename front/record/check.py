"""Check a record against the modified ONNX before ``save_model`` quantizes with it.

A record belongs to one model: every layer it names must be a quantizable layer of the modified
ONNX (a MatMul between two activations, ``<module>.matmul_<k>``, included:
:mod:`qdqforge.graph.activation_matmul`), and every layer whose weight ``quantize_model``
fake-quantized (its ``<weight>.arq`` initializer) must be in it. Its values must make an integer
grid: ``act_type`` absent, INT8 or INT16; ``scale_d``, ``scale_h`` (an activation MatMul's input
1) and every ``scale_w`` finite and > 0; ``offset_d`` and ``offset_h`` in [-128, 127], or in
[-32768, 32767] when ``act_type`` is INT16; one ``scale_w`` for the tensor or one per output
channel; ``dst_type`` (the weight grid) absent or INT4/INT6/INT7/INT8; fields that cannot take
effect are refused or warned about (:mod:`qdqforge.front.record.effect`).

And the record must be the one ``quantize_model`` wrote for these weights: each fake-quantized
weight of the modified ONNX must lie on the record's ``scale_w`` grid, ``W == rint(W / s_w) * s_w``
exactly (``weight_grid``; ARQ and AdaRound write ``q * s_w`` in float32, so this holds bit for
bit). Two flows sharing one record path break this: the second ``quantize_model`` rewrites
``scale_w`` for its own weights, and the first model's weights read on that grid come out as
zeros or saturated (seen: a 1000x larger model's scales left 0 of 108 weights non-zero).
Otherwise the quantized models would be silently wrong (a negative scale flips signs, an int16
offset wraps in an int8 zero point) or fail deep inside a pass; a RecordError names the record,
the layer and the field instead.
"""

from __future__ import annotations

import math
import os

import numpy as np

from qdqforge.errors import RecordError
from qdqforge.front.record.effect import check_field_effects
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph.activation_matmul import activation_matmul_site, quantized_inputs
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import LAYER_OPS, WEIGHT_AXIS, LayerSite, layer_site
from qdqforge.passes.grids.act_grid import ACT_TYPE_BITS, act_bits, act_range
from qdqforge.passes.grids.weight_grid import WEIGHT_TYPE_BITS, off_grid_count

SAME_RUN = "give save_model the record quantize_model wrote together with this modified ONNX"


def check_record(graph: Graph, records: dict[str, LayerRecord], record_file, onnx_file) -> None:
    """Raise a RecordError for the first layer of ``records`` that ``graph`` cannot take.

    Raises:
        RecordError: unknown or missing layer, or a scale/offset off the layer's grid.
    """
    where = f"{os.fspath(record_file)} (for {os.fspath(onnx_file)})"
    sites = {
        name: layer_site(graph, name) or activation_matmul_site(graph, name) for name in records
    }
    for name, site in sites.items():
        if site is None:
            raise RecordError(
                f"{where}: layer '{name}' is not a quantizable layer of the modified ONNX; "
                f"was the record written for another model? {SAME_RUN}"
            )
    missing = sorted(quantized_layers(graph) - set(records))
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise RecordError(
            f"{where}: layer(s) {names} have fake-quantized weights in the modified ONNX but no "
            f"entry in the record; {SAME_RUN}"
        )
    for name, record in records.items():
        _check_values(name, record, sites[name], where)
        check_field_effects(name, record, graph, where)
        if ".arq" in getattr(sites[name].weight, "name", ""):
            _check_weight_grid(name, record, sites[name], where)


def quantized_layers(graph: Graph) -> set[str]:
    """Layers whose weight ``arq_weights`` replaced (the initializer name holds ``.arq``)."""
    names = set()
    for node in graph.gs.nodes:
        module = graph.module_of(node)
        site = layer_site(graph, module) if node.op in LAYER_OPS and module else None
        if site is not None and site.weight is not None and ".arq" in site.weight.name:
            names.add(site.name)
    return names


def _check_values(name: str, record: LayerRecord, site: LayerSite, where: str) -> None:
    def bad(field: str, value, allowed: str) -> RecordError:
        return RecordError(f"{where}: layer '{name}': {field}={value!r}; allowed: {allowed}")

    if record.act_type is not None and record.act_type not in ACT_TYPE_BITS:
        raise bad("act_type", record.act_type, " | ".join(ACT_TYPE_BITS))
    qmin, qmax = act_range(act_bits(record))
    grid = f"act_type {record.act_type}" if record.act_type else "act_type absent: INT8"
    for scale, offset in _activation_fields(site):
        value = getattr(record, scale)
        if value is not None and not _positive(value):
            raise bad(scale, value, "a finite number > 0")
        value = getattr(record, offset)
        if value is not None and not qmin <= value <= qmax:
            raise bad(offset, value, f"an integer in [{qmin}, {qmax}] ({grid})")
    if record.dst_type is not None and record.dst_type not in WEIGHT_TYPE_BITS:
        raise bad("dst_type", record.dst_type, " | ".join(WEIGHT_TYPE_BITS))
    if not all(_positive(s) for s in record.scale_w):
        raise bad("scale_w", list(record.scale_w), "finite numbers > 0")
    channels = _output_channels(site)
    if record.scale_w and channels is not None and len(record.scale_w) not in (1, channels):
        raise RecordError(
            f"{where}: layer '{name}' has {len(record.scale_w)} scale_w values; allowed: 1 "
            f"(per tensor) or {channels} (one per output channel)"
        )


def _activation_fields(site: LayerSite) -> list[tuple[str, str]]:
    """The record's (scale, offset) fields of each quantized input of ``site``."""
    fields = [("scale_d", "offset_d"), ("scale_h", "offset_h")]
    return fields[: len(quantized_inputs(site))]


def _check_weight_grid(name: str, record: LayerRecord, site: LayerSite, where: str) -> None:
    if not record.scale_w:
        raise RecordError(f"{where}: layer '{name}' has a quantized weight but no scale_w")
    w = np.asarray(site.weight.values, np.float32)
    scale = np.asarray(record.scale_w, np.float32)
    axis = WEIGHT_AXIS[site.weight_layout] if scale.size > 1 else None
    if axis is not None and scale.size != w.shape[axis]:
        raise RecordError(
            f"{where}: layer '{name}': {scale.size} scale_w values for a weight with "
            f"{w.shape[axis]} channels on its axis {axis} (per-channel scales of a grouped "
            "ConvTranspose cannot be written); give one scale_w"
        )
    off = off_grid_count(w, scale, axis, record, name)
    if off:
        raise RecordError(
            f"{where}: layer '{name}': {off} of {w.size} weights of the modified ONNX are not "
            f"on the record's scale_w grid (W != rint(W / scale_w) * scale_w): the record was "
            "written for other weights, e.g. by another quantize_model sharing this record path; "
            f"{SAME_RUN}"
        )


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _output_channels(site: LayerSite) -> int | None:
    if site.weight is None or site.weight_layout is None:
        return None
    shape = site.weight.shape
    axis = WEIGHT_AXIS[site.weight_layout]
    groups = site.groups if site.weight_layout == "ConvTranspose" else 1
    return int(shape[axis]) * groups
