"""NaN and infinity are divergences in every numeric gate, and the max error is order-free.

The model: ``y = BN(Conv(Concat(x * 1e-3, x * 1e-3)))`` with weights ``[2, -2]`` and a BN scale
of 3e38. Its outputs are 0; folding the BN into the Conv overflows float32 (weights +-inf), so
the folded model outputs NaN (inf - inf). Before, ``passes run --max-error`` printed
``max|Δ| nan`` and exited 0, and ``passes bisect`` found no pass (``nan > t`` is False).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import numpy_helper

from qdqforge.cli.main import main
from qdqforge.front.analysis.doctor.fidelity import fidelity
from qdqforge.front.analysis.layer_sensitivity import COSINE
from qdqforge.graph.diff.graph_diff import diff_graphs
from qdqforge.graph.diff.values import abs_rel_error
from qdqforge.graph.numerics import max_abs_error
from qdqforge.passes.debug.inputs import random_feeds
from tests.reliability.cases_untrusted import overflowing_bn

PIPELINE = "canonicalize,fold_bn"


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "nan.onnx"
    onnx.save(overflowing_bn(), path)
    return str(path)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_passes_run_max_error_fails_on_nan(model_path, tmp_path, capsys):
    dump = tmp_path / "dump"
    argv = ["passes", "run", model_path, "--dump-dir", str(dump), "--random-inputs"]
    code = main([*argv, "--pipeline", PIPELINE, "--max-error", "1e-3"])
    out = capsys.readouterr()
    assert code == 2, out
    assert "fold_bn" in out.err and "max|Δ| inf" in out.out
    logged = [json.loads(line) for line in (dump / "passlog.jsonl").read_text().splitlines()]
    assert [entry["max_error"] for entry in logged] == [0.0, "Infinity"]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_passes_bisect_names_the_pass(model_path, capsys):
    code = main(["passes", "bisect", model_path, "--random-inputs", "--pipeline", PIPELINE])
    out = capsys.readouterr().out
    assert code == 2, out
    assert "first pass over 0.0001: [02] fold_bn" in out and "y  (Conv conv)  max|Δ| inf" in out


def test_diff_flags_the_nan_tensor():
    before = overflowing_bn()
    after = onnx.ModelProto()
    after.CopyFrom(before)
    after.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.float32([np.nan]), "k"))
    numerics = diff_graphs(before, after, inputs=random_feeds(before)).numerics
    assert numerics.first_divergence == "xs"
    assert all(math.isinf(t.max_abs) and t.diverged for t in numerics.tensors)


SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, -3.5])
ARRAYS = hnp.arrays(np.float32, st.integers(1, 5), elements=st.floats(-1e3, 1e3, width=32))


def _poke(array, specials, where):
    out = array.copy()
    for value, i in zip(specials, where):
        out[i % out.size] = value
    return out


@given(
    pairs=st.lists(
        st.tuples(ARRAYS, st.lists(SPECIAL, max_size=2), st.lists(st.integers(0, 9))),
        min_size=1,
        max_size=4,
    ),
)
def test_max_error_is_order_free_and_never_nan(pairs):
    a = [x for x, _, _ in pairs]
    b = [_poke(x, specials, where) for x, specials, where in pairs]
    errors = {max_abs_error(list(pa), list(pb)) for pa, pb in _orders(a, b)}
    assert len(errors) == 1
    (error,) = errors
    assert not math.isnan(error)
    mismatch = any(
        not np.array_equal(x, y, equal_nan=True) and not np.isfinite(y).all() for x, y in zip(a, b)
    )
    assert math.isinf(error) == mismatch
    for x, y in zip(a, b):
        max_abs, max_rel = abs_rel_error(x, y)
        assert not math.isnan(max_abs) and not math.isnan(max_rel)
        assert not any(math.isnan(v) for v in vars(fidelity(x, y)).values())
        assert not math.isnan(COSINE(x.astype(np.float64), y.astype(np.float64)))


def _orders(a, b):
    for order in itertools.islice(itertools.permutations(range(len(a))), 6):
        yield [a[i] for i in order], [b[i] for i in order]
