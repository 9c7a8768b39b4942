"""Fuzzing the save-time record check: any record gives a RecordError or a record that saves.

Records for the base model (conv with 4 output channels, fc with 1 scale) with arbitrary values:
NaN/inf/negative/zero scales, offsets far outside int8 and int16, ``act_type`` absent, INT8,
INT16 or unknown, any number of weight scales, unknown or missing layers. :func:`check_record`
must either raise a RecordError or accept a record whose values are all valid; and a record it
accepts must save (fake-quant and deploy) with nothing but a typed QuantizationError (int32 bias
overflow) on the way. Example counts follow the hypothesis profile (``ci`` / ``long``, see
``tests/conftest.py``); the save property runs a tenth of them.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qdqforge.errors import QuantizationError, RecordError
from qdqforge.front.record.check import check_record
from qdqforge.front.record.file import LayerRecord
from qdqforge.front.save.write_models import write_quant_models
from qdqforge.graph import io

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0])
scales = floats | st.floats(1e-6, 1.0)  # plenty of valid ones too
act_types = st.none() | st.sampled_from(["INT8", "INT16", "INT4"])
records = st.builds(
    LayerRecord,
    scale_d=st.none() | scales,
    offset_d=st.none() | st.integers(-300, 300) | st.integers(-40000, 40000),
    act_type=act_types,
    scale_w=st.lists(scales, max_size=6).map(tuple),
    offset_w=st.lists(st.just(0), max_size=6).map(tuple),
)
layer_names = st.sampled_from(["conv", "fc", "fc", "conv", "head", "conv.0", "bn"])
record_files = st.dictionaries(layer_names, records, max_size=3)
good = st.floats(1e-6, 10.0)


def near_valid(channels: int):
    """Mostly valid values (3 in 4 draws per field), so the save property is exercised."""
    counts = st.sampled_from(sorted({1, channels}))
    scale_w = counts.flatmap(lambda n: st.lists(good, min_size=n, max_size=n))
    return st.builds(
        LayerRecord,
        scale_d=good | good | good | floats,
        offset_d=st.integers(-128, 127) | st.integers(-32768, 32767) | st.integers(-300, 300),
        scale_w=(scale_w | scale_w | scale_w | st.lists(scales)).map(tuple),
        act_type=st.none() | st.just("INT16"),
    )


model_records = st.fixed_dictionaries({"conv": near_valid(4), "fc": near_valid(1)})


@pytest.fixture(scope="module")
def graph(world):
    return io.load(world.onnx)


def _valid(record: LayerRecord, channels: int) -> bool:
    def positive(v):
        return math.isfinite(v) and v > 0

    bound = {None: 128, "INT8": 128, "INT16": 32768}.get(record.act_type)
    return (
        bound is not None
        and (record.scale_d is None or positive(record.scale_d))
        and (record.offset_d is None or -bound <= record.offset_d < bound)
        and all(positive(s) for s in record.scale_w)
        and len(record.scale_w) in (0, 1, channels)
    )


@settings(suppress_health_check=FIXTURES)
@given(record_files)
def test_record_check_raises_only_record_error_and_accepts_only_valid_records(graph, layers):
    try:
        check_record(graph, layers, "fuzz.txt", "m.onnx")
    except RecordError:
        return
    assert set(layers) == {"conv", "fc"}
    assert _valid(layers["conv"], 4) and _valid(layers["fc"], 1)


@settings(suppress_health_check=FIXTURES, max_examples=max(settings().max_examples // 10, 10))
@given(layers=model_records)
def test_a_record_the_check_accepts_saves(graph, layers, tmp_path_factory):
    try:
        check_record(graph, layers, "fuzz.txt", "m.onnx")
    except RecordError:
        return
    event("accepted: saved" + (" (int16)" if any(r.act_type for r in layers.values()) else ""))
    complete = {k: r for k, r in layers.items() if r.scale_d is not None and r.scale_w}
    out = tmp_path_factory.mktemp("fuzz_save") / "net"
    try:
        write_quant_models(graph.copy(), complete, out, verify=False)
    except QuantizationError as e:
        assert "beyond int32" in str(e)
