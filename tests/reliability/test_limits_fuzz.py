"""Validation bounds what the work will cost: a config, a graph input or a name list that passes
validation never leads to an unbounded search, an oversized array or an unusable name.

Hypothesis properties: IFMR ``search_range``/``search_step`` of any magnitude (subnormal steps,
ranges up to 1e300) either fail ``load_quant_config`` with a ConfigError or give at most
``MAX_CANDIDATES`` candidates; ``random_feeds`` on any declared dims and element type either
refuses with an InputDataError or draws arrays within the one-tensor limit; ``input_names`` /
``output_names`` of any shape either fail with a ConfigError or are distinct non-empty strings.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from qdqforge.errors import ConfigError, InputDataError
from qdqforge.front.config import load_quant_config
from qdqforge.front.export.io_names import check_io_names
from qdqforge.graph.tensor_budget import max_tensor_bytes
from qdqforge.passes.debug.inputs import random_feeds
from qdqforge.runtime.calibration.ifmr import search_factors
from qdqforge.runtime.calibration.ifmr_cost import MAX_CANDIDATES

MAGNITUDES = st.one_of(st.floats(5e-324, 1e-300), st.floats(1e-12, 10.0), st.floats(10.0, 1e300))


@given(start=MAGNITUDES, width=MAGNITUDES, step=MAGNITUDES)
def test_ifmr_search_is_bounded_or_refused(world, tmp_path_factory, start, width, step):
    tree = json.loads(world.config.read_text())
    act = tree["conv"]["activation_quant_params"]
    act.update(search_range=[start, start + width], search_step=step)
    path = tmp_path_factory.mktemp("ifmr") / "c.json"
    path.write_text(json.dumps(tree))
    try:
        config = load_quant_config(path, world.layers)
    except ConfigError as error:
        assert "conv.activation_quant_params.search_" in str(error)
        return
    params = next(item for item in config.layers if item.name == "conv").activation_quant_params
    factors = search_factors(params.search_range, params.search_step)
    assert 0 < factors.numel() <= MAX_CANDIDATES + 1


DIMS = st.lists(st.one_of(st.integers(-5, 8), st.integers(2**20, 2**62), st.none()), max_size=5)
TYPES = st.sampled_from(sorted(TensorProto.DataType.values()))


@given(dims=DIMS, elem_type=TYPES)
def test_random_inputs_are_bounded_or_refused(dims, elem_type):
    x = helper.make_tensor_value_info(
        "x", elem_type, [d if d is not None else "batch" for d in dims]
    )
    for dim, value in zip(x.type.tensor_type.shape.dim, dims):
        if value is not None and value < 0:
            dim.dim_value = value  # make_tensor_value_info refuses negative dims; a file need not
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [])
    try:
        feeds = random_feeds(helper.make_model(graph))
    except InputDataError as error:
        assert "random input 'x'" in str(error)
        return
    assert feeds["x"].nbytes <= max_tensor_bytes()
    assert list(feeds["x"].shape) == [2 if d is None else d for d in dims]


NAME = st.one_of(st.text(max_size=4), st.integers(), st.none(), st.binary(max_size=2))
NAMES = st.one_of(st.none(), st.text(max_size=3), st.lists(NAME, max_size=3), st.tuples(NAME))


@given(inputs=NAMES, outputs=NAMES)
def test_io_names_are_usable_or_refused(inputs, outputs):
    try:
        check_io_names(inputs, outputs, "quantize_model")
    except ConfigError as error:
        assert str(error).startswith("quantize_model: ")
        return
    names = [n for group in (inputs, outputs) if group is not None for n in group]
    assert all(isinstance(n, str) and n for n in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("step", [1e-7, 5e-324])
def test_the_issue_steps_are_refused(world, tmp_path, step):
    tree = json.loads(world.config.read_text())
    tree["conv"]["activation_quant_params"]["search_step"] = step
    (tmp_path / "c.json").write_text(json.dumps(tree))
    with pytest.raises(ConfigError, match="IFMR candidates"):
        load_quant_config(tmp_path / "c.json", world.layers)
