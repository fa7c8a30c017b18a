"""The book built end to end with every chapter's tiny parameters, and the HTML checked as files.

The build runs once for this module (``python -m fmlib book --quick`` into a temporary directory,
with a private results store); the tests read what it wrote.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fmlib.book import build_book, check_html, toc_chapters
from fmlib.claims import CLAIMS
from fmlib.run import ChapterError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("book")
    previous = os.environ.get("FMLIB_RESULTS")
    os.environ["FMLIB_RESULTS"] = str(root / "results")
    try:
        return build_book(quick=True, output=root)
    finally:
        if previous is None:
            os.environ.pop("FMLIB_RESULTS")
        else:
            os.environ["FMLIB_RESULTS"] = previous


def chapter_pages(html_dir: Path) -> dict[str, str]:
    return {name: (html_dir / "book" / "chapters" / f"{name}.html").read_text() for name in toc_chapters()}


def test_every_chapter_is_rendered_with_its_figures(html_dir):
    pages = chapter_pages(html_dir)
    assert "01_closed_form" in pages
    for name, text in pages.items():
        images = re.findall(r'<img[^>]+src="([^"]+)"', text)
        assert images, f"{name} has no figure"
        for src in images:
            assert (html_dir / "book" / "chapters" / src).resolve().exists(), f"{name}: image {src} missing"
        assert re.search(r'<img[^>]+alt="[^"]{10,}"', text), f"{name}: figures need alt text"


def test_no_page_shows_an_error(html_dir):
    check_html(html_dir)
    for name, text in chapter_pages(html_dir).items():
        assert "Traceback" not in text, name
        assert not re.search(r"\b\w+Error: ", re.sub(r"<[^>]+>", "", text)), f"{name} shows an exception"


def test_glued_numbers_and_rerun_box_are_in_the_prose(html_dir):
    text = chapter_pages(html_dir)["01_closed_form"]
    assert "How to re-run this chapter" in text
    assert "python -m fmlib run closed_form" in text
    assert re.search(r"fitted slope of .{0,400}?-?0\.\d\d", text, re.S), "the Monte-Carlo slope must be glued"


def test_claims_ledger_lists_every_claim_with_a_verdict(html_dir):
    text = (html_dir / "book" / "chapters" / "claims_ledger.html").read_text()
    for claim in CLAIMS.values():
        assert claim.where.split(" (")[0] in text
    assert "reproduced" in text and "not checked yet" in text


def test_check_html_names_the_page_with_a_traceback(tmp_path):
    (tmp_path / "page.html").write_text('<div class="output traceback highlight-ipythontb">boom</div>')
    with pytest.raises(ChapterError, match=r"page\.html shows a traceback"):
        check_html(tmp_path)
