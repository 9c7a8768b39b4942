"""The graph diff page in a real headless chromium (Playwright driving Debian's /usr/bin/chromium).

Skipped when chromium (``make browser``) or the ``playwright`` package (dev extra) is missing.
Playwright's own browser download is never used: ``executable_path`` points at the system build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qdqforge.graph.diff.graph_diff import diff_graphs
from qdqforge.graph.diff.html import write_diff_html
from tests.helpers import diff_cases as cases
from tests.helpers.browser_page import LoadedPage, chromium_or_skip, page_opener

pytestmark = pytest.mark.browser

EXPECTED = {  # rewrite -> tab counts and picture size
    "fold_bn": {"added": 0, "removed": 1, "changed": 1, "initializers": 8, "svg": 3},
    "qdq": {"added": 2, "removed": 0, "changed": 1, "initializers": 2, "svg": 4},
}
PAIRS = {"fold_bn": cases.fold_bn_pair, "qdq": cases.qdq_pair}


@pytest.fixture(scope="module")
def browser():
    yield from chromium_or_skip()


class Page(LoadedPage):
    """A loaded diff page (tabs, rows, filter)."""

    def count(self, tab: str) -> int:
        return int(self.page.inner_text(f"#tab-{tab} .count"))

    def rows(self) -> int:
        return self.page.locator("#rows tbody tr.row").count()

    def filter(self, text: str) -> None:
        self.page.fill("#filter", text)


@pytest.fixture
def open_page(browser):
    yield from page_opener(browser, Page)


def _write(tmp_path: Path, name: str, inputs: bool = False) -> Path:
    before, after = PAIRS[name]()
    feeds = cases.input_for(before) if inputs else None
    return write_diff_html(diff_graphs(before, after, inputs=feeds), tmp_path / f"{name}.html")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_page_shows_exact_counts_and_picture(open_page, tmp_path, name):
    page = open_page(_write(tmp_path, name, inputs=True))
    expected = EXPECTED[name]
    for tab in ("added", "removed", "changed", "initializers"):
        assert page.count(tab) == expected[tab], tab
        page.page.click(f"#tab-{tab}")
        assert page.rows() == expected[tab], tab
    assert page.count("numerics") == 2
    assert page.page.locator("#picture-svg g.node").count() == expected["svg"]
    page.page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert page.errors == []
    assert page.requests == []


def test_filter_narrows_rows(open_page, tmp_path):
    page = open_page(_write(tmp_path, "fold_bn"))
    page.page.click("#tab-initializers")
    assert page.rows() == 8
    page.filter("bn.")
    assert page.rows() == 4
    page.filter("folded")
    assert page.rows() == 2
    assert page.page.inner_text("#shown-status") == "showing 2 of 2 matching"
    page.filter("no-such-tensor")
    assert page.rows() == 0
    page.filter("")
    assert page.rows() == 8


def test_detail_shows_provenance_and_highlights_the_node(open_page, tmp_path):
    page = open_page(_write(tmp_path, "fold_bn"))
    page.page.click("#tab-changed")
    page.page.click("#rows tr.row")
    detail = page.page.inner_text("#rows tr.detail")
    assert "created by pass fold_bn, rule fold_into_conv, from nodes conv/op, bn/bn" in detail
    assert "conv.folded_weight" in detail
    assert page.page.locator("g.node.hit").get_attribute("data-name") == "conv/op"
    page.page.click("#rows tr.row")
    assert page.page.locator("#rows tr.detail").count() == 0


def test_op_table_colours_deltas(open_page, tmp_path):
    page = open_page(_write(tmp_path, "qdq"))
    table = page.page.locator("#op-table")
    increase = table.locator("tr", has_text="QuantizeLinear").first.locator("span.inc")
    assert increase.inner_text() == "+1"
    fold = open_page(_write(tmp_path, "fold_bn"))
    row = fold.page.locator("#op-table tr", has_text="BatchNormalization")
    assert row.locator("span.dec").inner_text() == "-1"


def test_numerics_tab_flags_first_divergence(open_page, tmp_path):
    before = cases.conv_relu_model()
    after = cases.perturbed(before, "conv.weight", 0.5)
    diff = diff_graphs(before, after, inputs=cases.input_for(before))
    page = open_page(write_diff_html(diff, tmp_path / "numerics.html"))
    page.page.click("#tab-numerics")
    first = page.page.locator("#rows tr.first")
    assert first.count() == 1
    assert first.locator("td").nth(1).inner_text() == "c"
    assert "first divergence at tensor c (Conv conv)" in page.page.inner_text("#numerics-summary")
    assert page.errors == []


def test_10k_node_diff_stays_usable(open_page, tmp_path):
    from bench.synthetic import deep_conv_model
    from qdqforge.passes.infra.pipeline import rewrite

    before = deep_conv_model(1430)
    path = write_diff_html(diff_graphs(before, rewrite(before)), tmp_path / "big.html")
    page = open_page(path)  # its load time is not asserted here (bench/roundtrip.py times the diff)
    page.page.click("#tab-removed")
    assert page.count("removed") > 4000
    assert page.rows() == 200
    page.page.click("#show-more")
    assert page.rows() == 400
    page.filter("block1429/bn")
    assert page.rows() == 1
    assert page.page.locator("#picture-svg g.node").count() == 300
    assert page.errors == []
