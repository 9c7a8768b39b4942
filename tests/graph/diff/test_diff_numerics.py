"""graph.diff numerics: per-tensor error in topological order, first divergence flagged."""

from __future__ import annotations

import numpy as np
import pytest

from qdqforge.errors import InputDataError
from qdqforge.graph.diff.graph_diff import diff_graphs
from tests.helpers import diff_cases as cases


def test_fold_bn_has_no_numeric_error():
    before, after = cases.fold_bn_pair()
    numerics = diff_graphs(before, after, inputs=cases.input_for(before)).numerics
    assert [e.name for e in numerics.tensors] == ["b", "y"]  # "c" no longer exists in B
    assert all(e.max_abs <= 1e-5 and not e.diverged for e in numerics.tensors)
    assert numerics.first_divergence is None


def test_perturbed_weight_is_the_first_divergence():
    before = cases.conv_relu_model()
    after = cases.perturbed(before, "conv.weight", 0.5)
    diff = diff_graphs(before, after, inputs=cases.input_for(before))
    assert diff.changed_names == {"conv"}
    (change,) = diff.changed[0].initializers
    assert change.a_name == change.b_name == "conv.weight"
    assert change.max_abs == pytest.approx(0.5)
    assert [t.b_name for t in diff.initializers.changed] == ["conv.weight"]
    numerics = diff.numerics
    assert numerics.first_divergence == "c"
    assert [(e.name, e.diverged) for e in numerics.tensors] == [("c", True), ("y", True)]
    assert numerics.tensors[0].node == "conv" and numerics.tensors[0].op == "Conv"


def test_divergence_after_an_exact_stage_is_found_downstream():
    before, after = cases.fold_bn_pair()
    after = cases.perturbed(after, "conv.folded_bias", 1.0)
    numerics = diff_graphs(before, after, inputs=cases.input_for(before)).numerics
    assert numerics.first_divergence == "b"


def test_qdq_rounding_is_reported_against_the_threshold():
    before, after = cases.qdq_pair()
    feeds = cases.input_for(before)
    loose = diff_graphs(before, after, inputs=feeds, threshold=10.0).numerics
    assert loose.first_divergence is None
    strict = diff_graphs(before, after, inputs=feeds).numerics
    assert strict.first_divergence == "c"
    assert 0 < strict.tensors[0].max_abs < 1.0


def test_missing_input_is_named():
    before, after = cases.fold_bn_pair()
    with pytest.raises(InputDataError, match=r"\['x'\]"):
        diff_graphs(before, after, inputs={"wrong": np.zeros(1, np.float32)})
