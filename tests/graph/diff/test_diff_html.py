"""graph.diff_html without a browser: one self-contained file that embeds the diff JSON."""

from __future__ import annotations

import dataclasses
import re

import pytest

from qdqforge.errors import GraphError
from qdqforge.graph.diff.graph_diff import diff_graphs
from qdqforge.graph.diff.html import read_diff_html, render_diff_html, write_diff_html
from qdqforge.graph.diff.model import ModelSummary
from tests.helpers import diff_cases as cases


def test_page_embeds_the_diff_and_reads_back(tmp_path):
    diff = diff_graphs(*cases.fold_bn_pair())
    path = write_diff_html(diff, tmp_path / "out" / "diff.html")
    assert path.exists()
    assert read_diff_html(path) == diff
    assert [p.name for p in path.parent.iterdir()] == ["diff.html"]  # no temp file left behind


def test_page_is_offline():
    html = render_diff_html(diff_graphs(*cases.qdq_pair()))
    assert "__GRAPHDIFF_JSON__" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    assert "default-src 'none'" in html


def test_script_breaking_names_stay_inside_the_data_tag(tmp_path):
    diff = diff_graphs(*cases.qdq_pair())
    hostile = "</script><script>alert(1)</script><!--"
    summary = dataclasses.replace(diff.a, name=hostile)
    diff = dataclasses.replace(diff, a=summary)
    html = render_diff_html(diff)
    assert hostile not in html
    benign = render_diff_html(dataclasses.replace(diff, a=dataclasses.replace(diff.a, name="a")))
    assert html.count("</script>") == benign.count("</script>") == 3  # head, data, code tags
    path = write_diff_html(diff, tmp_path / "d.html")
    assert read_diff_html(path).a == ModelSummary(**{**vars(diff.a)})


def test_writing_onto_a_directory_is_an_error(tmp_path):
    with pytest.raises(GraphError, match="directory"):
        write_diff_html(diff_graphs(*cases.qdq_pair()), tmp_path)
