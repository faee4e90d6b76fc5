"""Report tables that read: no index 0, 1, 2, numbers and identifiers never broken."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from mtbc.reports.html import readable_tables

CLAIM = ("MERT-v1-330M's layer-averaged embedding beats VGGish on genre classification by "
         "more than ten points, as reported in the comparison's table 2")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"claim": [CLAIM, "bfloat16 agrees with float32"],
                         "found": ["61.2 [50.0, 72.1]", "min cosine 0.9991"],
                         "verdict": ["contradicted", "confirmed"],
                         "dtype": ["bfloat16", "float32"], "n": [12, 8]})


def test_a_range_index_is_dropped_a_meaningful_index_kept():
    html = readable_tables(_frame().to_html())
    assert "<th>0</th>" not in html and "<th>1</th>" not in html
    assert html.count("<th>") == 5  # the five column names only
    assert html.startswith('<div class="mtbc-table"><table')
    named = readable_tables(_frame().set_index("dtype").to_html())
    assert "<th>bfloat16</th>" in named and "<th>dtype</th>" in named
    numbered = _frame().rename(index={1: 5}).to_html()  # not 0..n-1: it means something
    assert '<th class="mtbc-num">5</th>' in readable_tables(numbered)


def test_numbers_stay_on_one_line_and_words_are_never_split():
    with pd.option_context("display.max_colwidth", None):  # as start_notebook sets it
        html = readable_tables(_frame().to_html())
    assert '<td class="mtbc-num">61.2 [50.0, 72.1]</td>' in html
    assert '<td class="mtbc-num">12</td>' in html
    assert 'class="mtbc-text"' in html and "comparison's table 2</td>" in html  # no "..."
    assert '<span class="mtbc-nobr">MERT-v1-330M\'s</span>' in html
    path = readable_tables(pd.DataFrame({"model": ["local:/data/my-models/mert"]}).to_html())
    assert ('<span class="mtbc-nobr">local:/</span><wbr/><span class="mtbc-nobr">data/</span>'
            '<wbr/><span class="mtbc-nobr">my-models/</span><wbr/>') in path
    assert readable_tables("<p>no table</p>") == "<p>no table</p>"
    escaped = readable_tables(pd.DataFrame({"x": ["<img src=x onerror=alert(1)>"]}).to_html())
    assert "<img" not in escaped and "&lt;img" in escaped


def _page(path, table_html: str, css: str) -> None:
    path.write_text(f"<!DOCTYPE html><html><head><style>main {{ width: 30rem; }} {css}"
                    f"</style></head><body><main>{table_html}</main></body></html>",
                    encoding="utf-8")


def test_the_browser_check_finds_split_tokens_and_the_report_css_has_none(tmp_path):
    from mtbc.reports.browser import check_page, find_chromium
    from mtbc.reports.html import _REPORT_CSS

    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    wide = pd.DataFrame({f"architecture {i}": ["8.3440 contradicted ROC-AUC"] for i in range(8)})
    _page(tmp_path / "old.html", wide.to_html(),
          "td, th { overflow-wrap: anywhere; } table { max-width: 100%; }")
    old = check_page(tmp_path / "old.html")
    assert not old.ok and any("broken across lines" in s for s in old.split)
    _page(tmp_path / "new.html",
          f'<div class="jp-RenderedHTMLCommon">{readable_tables(wide.to_html())}</div>',
          _REPORT_CSS)
    new = check_page(tmp_path / "new.html")
    assert new.split == [] and new.overflow == [] and new.tables == 1, new
