"""graph.diff on a 10k-node rewrite: complete, consistent and bounded.

Its speed (diff, page, JSON) is a row of ``bench/roundtrip.py``'s synthetic table, not a timed test.
"""

from __future__ import annotations

import pytest

from bench.synthetic import deep_conv_model
from qdqforge.graph.diff.graph_diff import GraphDiff, diff_graphs
from qdqforge.graph.diff.html import render_diff_html
from qdqforge.graph.diff.picture import MAX_PICTURE_NODES
from qdqforge.passes.infra.pipeline import rewrite

BLOCKS = 1430  # 7 nodes a block: 10,010 nodes


@pytest.fixture(scope="module")
def big():
    """(before, after, diff)."""
    before = deep_conv_model(BLOCKS)
    after = rewrite(before)
    return before, after, diff_graphs(before, after)


def test_10k_node_diff_accounts_for_every_node(big):
    before, after, diff = big
    assert len(before.graph.node) >= 10_000
    matched = diff.unchanged + len(diff.changed)
    assert matched + len(diff.removed) == len(before.graph.node)
    assert matched + len(diff.added) == len(after.graph.node)
    assert diff.op_deltas()["BatchNormalization"] == -BLOCKS
    assert {c.b.op for c in diff.changed} >= {"Conv"}
    assert sum(c.b.op == "Conv" for c in diff.changed) == BLOCKS


def test_10k_node_diff_page_and_json_stay_bounded(big):
    diff = big[2]
    assert diff.neighbourhood.truncated
    assert len(diff.neighbourhood.nodes) == MAX_PICTURE_NODES
    html = render_diff_html(diff)
    back = GraphDiff.from_json(diff.to_json())
    assert back == diff
    assert len(html) < 40 * 2**20
