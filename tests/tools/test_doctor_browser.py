"""The doctor page in a real headless chromium (Playwright driving /usr/bin/chromium).

Skipped when chromium or playwright is missing, like the diff viewer's browser tests.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import qdqforge
from qdqforge.front.analysis.doctor.channels import ChannelRanges
from qdqforge.front.analysis.doctor.fidelity import Fidelity
from tests.helpers.browser_page import LoadedPage, chromium_or_skip, page_opener
from tests.helpers.doctor_models import OUTLIER_CHANNEL, mlp_config, mlp_input, planted_mlp

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    yield from chromium_or_skip()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doctor_page")
    model, x = planted_mlp(), mlp_input()
    return qdqforge.analyze(str(mlp_config(tmp / "c.json", model, x)), model, x)


class Page(LoadedPage):
    """A loaded doctor page (layer table order and cells)."""

    def order(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "#layers tr.row", "rows => rows.map(r => r.dataset.name)"
        )

    def cell(self, name: str, column: int) -> str:
        return self.page.inner_text(f"#layers tr.row[data-name={name}] td:nth-child({column})")


@pytest.fixture
def open_page(chromium):
    yield from page_opener(chromium, Page)


def test_page_shows_ranking_skip_list_and_summary(open_page, report, tmp_path):
    page = open_page(report.write_html(tmp_path / "r.html"))
    assert page.order() == ["fc2", "fc3", "fc1"]
    assert page.page.locator("#layers tr.row.skip").count() == 1
    assert page.page.inner_text("#skip-list li").startswith("fc2 — ")
    assert "activation" in page.page.inner_text("#skip-list li")
    assert f"{report.model.sqnr_db:.2f} dB" in page.page.inner_text("#card-model")
    assert f"{report.with_skips.sqnr_db:.2f} dB" in page.page.inner_text("#card-skips")
    assert page.cell("fc3", 8) == "weight" and page.cell("fc2", 8) == "activation"
    page.page.screenshot(path=str(tmp_path / "r.png"), full_page=True)
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert page.errors == [] and page.requests == []


def test_columns_sort_both_ways(open_page, report, tmp_path):
    page = open_page(report.write_html(tmp_path / "r.html"))
    page.page.click("th[data-key=name]")
    assert page.order() == ["fc1", "fc2", "fc3"]
    assert page.page.get_attribute("th[data-key=name]", "aria-sort") == "ascending"
    page.page.click("th[data-key=name]")
    assert page.order() == ["fc3", "fc2", "fc1"]
    page.page.click("th[data-key=activation]")
    assert page.order() == ["fc2", "fc3", "fc1"]
    page.page.click("th[data-key=weight]")
    page.page.click("th[data-key=weight]")
    assert page.order()[-1] == "fc3"
    assert page.errors == []


def test_detail_draws_every_channel_and_marks_the_outlier(open_page, report, tmp_path):
    page = open_page(report.write_html(tmp_path / "r.html"))
    page.page.click("#layers tr.row[data-name=fc2]")
    detail = page.page.locator("#layers tr.detail")
    assert detail.count() == 1
    assert detail.locator("svg.channels").count() == 1
    assert detail.locator("svg.channels rect.channel").count() == 32
    outliers = detail.locator("rect.channel.outlier")
    assert outliers.count() == 1
    assert outliers.get_attribute("data-channel") == str(OUTLIER_CHANNEL)
    assert (
        f"{report.layer('fc2').weight_only.sqnr_db:.2f}"
        in detail.locator("table.fidelity").inner_text()
    )
    page.page.click("#layers tr.row[data-name=fc2]")
    assert page.page.locator("#layers tr.detail").count() == 0
    assert page.errors == []


def test_balanced_picture_and_infinite_sqnr(open_page, report, tmp_path):
    fc2, fc1 = report.layer("fc2"), report.layer("fc1")
    flat = ChannelRanges(
        fc2.channels.lo / fc2.channels.absmax, fc2.channels.hi / fc2.channels.absmax
    )
    exact = Fidelity(math.inf, 1.0, 0.0)
    layers = (
        dataclasses.replace(fc1, quantized=exact),
        dataclasses.replace(fc2, balanced=flat, dmq_alpha=0.5),
        report.layer("fc3"),
    )
    page = open_page(dataclasses.replace(report, layers=layers).write_html(tmp_path / "b.html"))
    assert page.cell("fc1", 4) == "∞"
    assert page.cell("fc2", 11) == "1.000"
    page.page.click("th[data-key=sqnr]")
    assert page.order()[-1] == "fc1"
    page.page.click("#layers tr.row[data-name=fc2]")
    balanced = page.page.locator("#layers tr.detail svg.channels.balanced")
    assert balanced.locator("rect.channel").count() == 32
    assert balanced.locator("rect.channel.outlier").count() == 0
    assert np.isclose(flat.outlier_ratio, 1.0)
    assert page.errors == []
