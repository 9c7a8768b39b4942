"""GraphDiff JSON: lossless round trip (tuples, nested dataclasses, NaN/inf) and clear errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from qdqforge.errors import GraphError
from qdqforge.graph.diff.graph_diff import GraphDiff, diff_graphs
from qdqforge.graph.diff.model import Numerics, TensorError
from tests.helpers import diff_cases as cases


@pytest.mark.parametrize("pair", [cases.fold_bn_pair, cases.qdq_pair], ids=["fold_bn", "qdq"])
def test_round_trip_is_exact(pair):
    before, after = pair()
    diff = diff_graphs(before, after, inputs=cases.input_for(before))
    text = diff.to_json()
    back = GraphDiff.from_json(text)
    assert back == diff
    assert back.to_json() == text
    assert isinstance(back.changed[0].inputs, tuple)
    assert isinstance(back.op_counts["Conv"], tuple)


def test_non_finite_floats_travel_as_strings():
    diff = diff_graphs(*cases.fold_bn_pair())
    errors = (TensorError("t", "n", "Conv", (2,), float("inf"), float("nan"), True),)
    diff = dataclasses.replace(diff, numerics=Numerics(1e-4, errors, "t"))
    data = json.loads(diff.to_json())  # strict JSON: no bare NaN/Infinity tokens
    assert data["numerics"]["tensors"][0]["max_abs"] == "Infinity"
    back = GraphDiff.from_json(diff.to_json()).numerics.tensors[0]
    assert back.max_abs == float("inf") and back.max_rel != back.max_rel


def test_bad_json_names_the_problem():
    with pytest.raises(GraphError, match="not valid JSON"):
        GraphDiff.from_json("{")
    data = json.loads(diff_graphs(*cases.qdq_pair()).to_json())
    data["a"]["bogus"] = 1
    with pytest.raises(GraphError, match="bogus"):
        GraphDiff.from_dict(data)
    data = json.loads(diff_graphs(*cases.qdq_pair()).to_json())
    data["unchanged"] = "many"
    with pytest.raises(GraphError, match="expected int"):
        GraphDiff.from_dict(data)
