"""The browser checks of the book can fail: tiny pages with each fault are flagged, a clean page is not.

``tests/test_book.py`` runs :data:`tests.browser.LAYOUT_PROBLEMS` and :func:`tests.browser.outside_requests`
over every page of the built book; here each is shown to catch what it is for (an element wider
than its column, a clipped equation, a raw ``-inf`` in a table, a request beyond 127.0.0.1), and
the book's own table HTML (:class:`fmlib.book.report._TableView`) with its style sheet
(``book/static/fmlib.css``) is shown to pass them, and to fail without the style sheet.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from fmlib.book.chapters import REPO_ROOT
from fmlib.book.report import _TableView, format_cell
from tests.browser import LAYOUT_PROBLEMS, chromium, outside_requests, require_browser, serve

EQUATION = '<mjx-container display="true" style="display:block">{body}</mjx-container>'
WIDE_FORMULA = '<span style="display:inline-block;width:2400px">x_t = (1 - t) x_0 + t x_1</span>'


def page(body: str, *, css: bool = False) -> str:
    link = '<link rel="stylesheet" href="fmlib.css">' if css else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{link}</head><body style='margin:0'>"
            f"<div class='bd-article-container' style='width:800px;margin-left:100px'><article>{body}</article></div>"
            "</body></html>")


def wide_table() -> pd.DataFrame:
    frame = pd.DataFrame({f"column_{i}": [1.234567 * i, float("-inf")] for i in range(30)})
    frame["t_star"] = [np.nan, 0.5]
    return frame


PAGES = {
    "wide.html": page('<div style="width:3000px">a figure too wide for the column</div>'),
    "clipped.html": page('<div style="overflow:hidden">' + EQUATION.format(body=WIDE_FORMULA) + "</div>"),
    "inf.html": page("<table><tr><th>t*</th></tr><tr><td>-inf</td></tr><tr><td>nan</td></tr></table>"),
    "cdn.html": page('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'),
    "bare_table.html": page(_TableView(wide_table())._repr_html_()),
    "clean.html": page(EQUATION.format(body=WIDE_FORMULA) + _TableView(wide_table())._repr_html_(), css=True),
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Each page opened in headless Chromium: its layout problems and its requests beyond 127.0.0.1."""
    require_browser()
    site = tmp_path_factory.mktemp("pages")
    shutil.copy(REPO_ROOT / "book" / "static" / "fmlib.css", site / "fmlib.css")
    for name, text in PAGES.items():
        (site / name).write_text(text)
    found = {}
    with serve(site) as base, chromium() as browser:
        for name in PAGES:
            outside_requests(browser)  # empty the log
            browser.get(f"{base}/{name}")
            WebDriverWait(browser, 15).until(  # this page, loaded: never the previous one (a race seen once)
                lambda b, name=name: b.current_url.endswith(name)
                and b.execute_script("return document.readyState") == "complete")
            found[name] = (browser.execute_script(LAYOUT_PROBLEMS), outside_requests(browser))
    return found


def test_an_element_wider_than_its_column_is_flagged(checked):
    problems, _ = checked["wide.html"]
    assert any(p.startswith("wider than its column: div") for p in problems), problems


def test_a_clipped_equation_is_flagged(checked):
    problems, _ = checked["clipped.html"]
    assert any(p.startswith("clipped equation (cut off by div)") for p in problems), problems


def test_a_raw_infinity_or_nan_in_a_table_is_flagged(checked):
    problems, _ = checked["inf.html"]
    assert any("raw -inf in a table cell" in p for p in problems), problems
    assert any("raw nan in a table cell" in p for p in problems), problems


def test_a_request_beyond_localhost_is_seen_and_fails(checked):
    _, requests = checked["cdn.html"]
    assert requests == ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"]


def test_a_wide_table_without_the_style_sheet_overflows(checked):
    problems, _ = checked["bare_table.html"]
    assert any(p.startswith("wider than its column") for p in problems), problems


def test_the_book_style_sheet_makes_wide_equations_and_tables_scroll(checked):
    problems, requests = checked["clean.html"]
    assert problems == [] and requests == []


def test_recorded_tables_format_numbers_and_mark_gaps():
    view = _TableView(pd.DataFrame({"n_train": [10, 2000], "t_star": [0.123456789, float("-inf")],
                                    "copy": [float("nan"), 1.0e-7], "family": ["gaussian", "digits"]}))
    markup = view._repr_html_()
    assert '<th scope="col">n train</th>' in markup and '<th scope="col">t star</th>' in markup
    assert '<td class="fm-num">0.1235</td>' in markup and '<td class="fm-num">1e-7</td>' in markup
    assert '<td class="fm-num">2000</td>' in markup and '<td class="fm-text">gaussian</td>' in markup
    assert '<td class="fm-missing" title="-inf">\u2013</td>' in markup
    assert '<td class="fm-missing" title="not available">\u2013</td>' in markup
    assert "inf<" not in markup.replace('title="-inf"', "") and ">nan<" not in markup
    assert view.note() == ("\u2013 marks a value that is not available or not finite "
                           "(-inf in t star; not available in copy).")
    assert "\u2013" in repr(view) and "-inf" in repr(view)  # the text form carries the note too
    indexed = _TableView(pd.DataFrame({"d": [2, 8], "x": [1.0, 2.0]}).set_index("d"))._repr_html_()
    assert '<th scope="row" class="fm-num">2</th>' in indexed
    assert _TableView(pd.DataFrame({"x": [1.5]})).note() == ""
    assert format_cell("0.0124") == ("0.0124", "num") and format_cell("\u22123e-5") == ("\u22123e-5", "num")
    assert format_cell("0.990 to 1.027") == ("0.990 to 1.027", "text") and format_cell("N = 2")[1] == "text"
    text = _TableView(pd.DataFrame({"t*": ["0.31", "-inf", "nan"]}))
    assert ">-inf<" not in text._repr_html_()
    assert text.note() == "\u2013 marks a value that is not available or not finite (-inf or not available in t*)."
    math = _TableView(pd.DataFrame({"L_CFM(v)": [1.0], "t_K": [0.9], "r^2": [0.5], "Lambda": [2.0], "a<b": [1],
                                    "MMD2 to held-out": [0.1]}))
    heads = math._repr_html_().split("</thead>")[0]
    for shown in ("L<sub>CFM</sub>(v)", "t<sub>K</sub>", "r<sup>2</sup>", "\N{GREEK CAPITAL LETTER LAMDA}", "a&lt;b",
                  "MMD<sup>2</sup> to held-out"):
        assert f'<th scope="col">{shown}</th>' in heads, shown  # math-like names typeset, text still escaped
    grouped = _TableView(pd.DataFrame({"t*": [float("-inf")], "low": [float("-inf")], "y": [float("nan")]}))
    assert grouped.note() == ("\u2013 marks a value that is not available or not finite "
                              "(-inf in t*, low; not available in y).")
