"""The book built end to end with every chapter's tiny parameters, checked as files and as a reader sees it.

The build runs once for this module (``python -m fmlib book --quick`` into a temporary directory,
with the session's store of quick runs); the tests read what it wrote, and check that the
repository's ``book/`` was left as it was. The reader's view: every page is served on
http://127.0.0.1 and opened in headless Chromium with the network off (``tests/browser.py``), which
waits for MathJax and the images; a full-page screenshot of each page lands in
``_build/screenshots/``. Every page is checked for layout faults (an element wider than its column,
a clipped equation, a raw nan/inf in a table) and for requests beyond 127.0.0.1. LinkChecker then
follows every internal link of the site, offline. One quick run is also rendered with
``python -m fmlib show`` and checked the same way, and the book is rebuilt once unchanged (the
cached rebuild; its time is printed).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from fmlib.book.build import build_book, check_html, colab_setup_source, toc_chapters
from fmlib.book.chapters import REPO_ROOT, find_chapter
from fmlib.book.claims import CLAIMS
from fmlib.book.course import chapter_title, rerun_exercises
from fmlib.book.params import read_parameters
from fmlib.book.run import ChapterError
from tests.browser import (
    LAYOUT_PROBLEMS,
    READ_PAGE,
    WAIT_FOR_IMAGES,
    WAIT_FOR_MATHJAX,
    chromium,
    console_errors,
    full_page_screenshot,
    outside_requests,
    serve,
)
from tests.conftest import results_at

pytestmark = pytest.mark.slow


def book_status() -> str:
    """``git status`` of the repository's ``book/``, ignored files included."""
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--", "book"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout


BOOK_STATUS_BEFORE = book_status()


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory, quick_store, quick_run) -> Path:
    """The quick book, built from the session's quick runs (each chapter executed once per session)."""
    root = tmp_path_factory.mktemp("book")
    for name in toc_chapters():
        quick_run(name)
    for d in (8, 16):  # a two-point sweep, so the runs page draws a sweep's figure
        quick_run("cosine_point", d=d)
    with results_at(quick_store):
        return build_book(quick=True, output=root)


def test_the_build_leaves_the_repository_book_folder_untouched(html_dir):
    assert book_status() == BOOK_STATUS_BEFORE
    assert (html_dir.parent / "source" / "book" / "chapters" / "01_closed_form.ipynb").is_file()


def test_no_page_names_a_network_address_for_a_script_style_or_font(html_dir):
    for page in html_dir.rglob("*.html"):
        text = page.read_text()
        loaded = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', text)
        assert not loaded, f"{page.relative_to(html_dir)} loads {loaded[:3]}"
    assert (html_dir / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
    assert (html_dir / "_static" / "fmlib.css").is_file()


def page_text(path: Path) -> str:
    """A page's visible text on one line, with Sphinx's typographic quotes made plain again."""
    text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
                    .split())


def test_runs_page_lists_the_stored_quick_runs(html_dir):
    text = page_text(html_dir / "book" / "runs.html")
    assert "Stored runs" in text
    for name in toc_chapters():
        assert chapter_title(find_chapter(name)) in text, f"the runs page must list {name}'s quick run"
    assert "python -m fmlib show closed_form -p" in text
    assert "Sweep of cosine_point" in text, "the quick book stores a two-point sweep"
    assert re.search(r'<img[^>]+src="[^"]*sweep-cosine_point\.png"', (html_dir / "book" / "runs.html").read_text())


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


def test_glued_numbers_in_the_prose_are_finite(html_dir):
    for name, text in chapter_pages(html_dir).items():
        bad = re.findall(r'<span class="pasted-text">\s*([-+]?(?:nan|inf|infinity))\s*</span>', text, re.I)
        assert not bad, f"{name}: the prose quotes {len(bad)} glued number(s) that are not finite ({bad[0]})"


def test_tables_do_not_show_row_numbers(html_dir):
    for name, text in chapter_pages(html_dir).items():
        assert not re.search(r"<tbody>\s*<tr>\s*<th>0</th>", text), f"{name}: a table shows pandas' row numbers"


def test_no_page_shows_an_error(html_dir):
    check_html(html_dir)
    for name, text in chapter_pages(html_dir).items():
        assert "Traceback" not in text, name
        assert not re.search(r"\b\w+Error: ", re.sub(r"<[^>]+>", "", text)), f"{name} shows an exception"


def test_glued_numbers_and_rerun_box_are_in_the_prose(html_dir):
    text = chapter_pages(html_dir)["01_closed_form"]
    assert "How to re-run this chapter" in text
    assert "python -m fmlib run closed_form" in re.sub(r"<[^>]+>", "", text)  # the command, highlighted in spans
    prose = " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())
    assert re.search(r"the largest residual over the \d+ samples and the solvers is \d+\.\d\d", prose), \
        "the residual must be glued"


def test_claims_ledger_lists_every_claim_with_a_verdict(html_dir):
    text = (html_dir / "book" / "chapters" / "claims_ledger.html").read_text()
    for claim in CLAIMS.values():
        assert claim.where.split(" (")[0] in text
    visible = " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())
    assert re.search(r"Verdicts: \d+ reproduced", visible)
    assert "not checked yet" not in visible, "every claim of the catalogue has a chapter whose quick run records it"


def test_check_html_names_the_page_with_a_traceback(tmp_path):
    (tmp_path / "page.html").write_text('<div class="output traceback highlight-ipythontb">boom</div>')
    with pytest.raises(ChapterError, match=r"page\.html shows a traceback"):
        check_html(tmp_path)


def test_course_page_has_generated_run_times_and_homework(html_dir):
    text = page_text(html_dir / "book" / "course.html")
    for name in toc_chapters():
        notebook = find_chapter(name)
        assert chapter_title(notebook) in text, f"the course guide must list {name}"
        for exercise in rerun_exercises(notebook):
            for command in exercise.commands:
                assert command in text, f"the course guide must list {name}'s re-run command {command!r}"
        for spec in read_parameters(notebook).values():
            assert spec.name in text or spec.name in ("seed", "device")
    assert re.search(r"tiny test run.*?\d+(\.\d)? (s|min)\b", text), "the tiny runs' times must be read from the store"


# --- the book as a reader sees it: served over http, opened in headless Chromium -----------------

SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def site(html_dir) -> str:
    with serve(html_dir) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def book_pages(html_dir: Path) -> list[str]:
    """The pages of the table of contents, as paths relative to the site root."""
    return sorted(str(p.relative_to(html_dir)) for p in (html_dir / "book").rglob("*.html"))


def is_chapter(page: str) -> bool:
    return Path(page).stem in toc_chapters()


@pytest.fixture(scope="module")
def rendered(html_dir, site, browser) -> dict[str, dict[str, Any]]:
    """Every page opened once: what the reader sees (after MathJax and the images), and a screenshot."""
    seen = {}
    for page in book_pages(html_dir):
        browser.get(f"{site}/{page}")
        outside_requests(browser)  # forget the requests of the page before
        view = {"mathjax": browser.execute_async_script(WAIT_FOR_MATHJAX),
                "broken_images": browser.execute_async_script(WAIT_FOR_IMAGES),
                "images": browser.execute_script("return document.querySelectorAll('article img').length"),
                **browser.execute_script(READ_PAGE),
                "console": console_errors(browser),
                "launch": browser.execute_script(
                    "return [...document.querySelectorAll('.dropdown-launch-buttons a')].map(a => a.href)"),
                "download": browser.execute_script(
                    "return [...document.querySelectorAll('.dropdown-download-buttons a')].map(a => a.href)"),
                "layout": browser.execute_script(LAYOUT_PROBLEMS),
                "outside": outside_requests(browser)}
        full_page_screenshot(browser, SCREENSHOTS / (page.removesuffix(".html").replace("/", "__") + ".png"))
        seen[page] = view
    return seen


def test_math_is_typeset_on_every_page(rendered):
    problems = []
    for page, view in rendered.items():
        if view["math_sources"] or is_chapter(page):
            if view["mathjax"] != "ready":
                problems.append(f"{page}: MathJax is {view['mathjax']} (scripts: {view['mathjax_src']})")
            elif view["typeset"] == 0:
                problems.append(f"{page}: no formula was typeset (no mjx-container)")
        if view["math_errors"]:
            problems.append(f"{page}: TeX errors shown: {view['math_errors'][:3]}")
        raws = [raw for raw in ("$$", "\\(", "\\)", "\\[", "\\begin{") if raw in view["prose"]]
        if raws:
            at = min(view["prose"].index(raw) for raw in raws)
            snippet = " ".join(view["prose"][max(0, at - 60):at + 60].split())
            problems.append(f"{page}: raw TeX {raws} left in the text, e.g. ...{snippet}...")
    assert not problems, "\n".join(problems)


def test_no_page_has_a_layout_fault(rendered):
    """No element wider than its column, no clipped equation, no raw nan/inf in a table (see test_layout_checks)."""
    problems = [f"{page}: {problem}" for page, view in rendered.items() for problem in view["layout"]]
    assert not problems, "\n".join(problems)


def test_no_page_asks_for_anything_beyond_localhost(rendered):
    problems = [f"{page}: {url}" for page, view in rendered.items() for url in view["outside"]]
    assert not problems, "\n".join(problems)


def test_show_renders_a_quick_run_as_a_standalone_page(quick_store, quick_run, browser):
    from selenium.webdriver.support.wait import WebDriverWait

    from fmlib.book.show import show_run

    run = quick_run("01_closed_form")
    with results_at(quick_store):
        page = show_run("01_closed_form", run.params)
    assert page.name == "run.html" and quick_store in page.parents
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", page.read_text())).split())
    assert "This page shows one stored run" in text and "memorisation" in text and "reproduced" in text
    with serve(page.parent) as base:
        outside_requests(browser)
        browser.get(f"{base}/{page.name}")
        WebDriverWait(browser, 30).until(lambda driver: driver.current_url == f"{base}/{page.name}" and
                                         driver.execute_script("return document.readyState") == "complete")
        mathjax = browser.execute_async_script(WAIT_FOR_MATHJAX)
        assert mathjax == "ready", f"MathJax {mathjax} on {browser.current_url} ({browser.title!r})"
        assert browser.execute_async_script(WAIT_FOR_IMAGES) == []
        view = browser.execute_script(READ_PAGE)
        assert view["typeset"] > 0 and not view["math_errors"] and not view["tracebacks"]
        assert browser.execute_script(LAYOUT_PROBLEMS) == []
        assert outside_requests(browser) == []
        full_page_screenshot(browser, SCREENSHOTS / "show__01_closed_form.png")


def test_a_cached_rebuild_renders_nothing_again(html_dir, quick_store):
    """Nothing changed: the rebuild finds every run stored and Sphinx every page current (its time is printed)."""
    pages = {p: p.stat().st_mtime_ns for p in (html_dir / "book").rglob("*.html")}
    started = time.perf_counter()
    with results_at(quick_store):
        build_book(quick=True, output=html_dir.parent.parent)
    print(f"\ncached rebuild of the quick book: {time.perf_counter() - started:.1f} s")
    assert {p: p.stat().st_mtime_ns for p in pages} == pages, "an unchanged page was written again"


def test_every_image_loads_and_every_figure_has_alt_text_and_a_caption(rendered):
    problems = [f"{page}: images that did not load: {view['broken_images']}"
                for page, view in rendered.items() if view["broken_images"]]
    problems += [f"{page}: images without alt text: {view['images_without_alt']}"
                 for page, view in rendered.items() if view["images_without_alt"]]
    problems += [f"{page}: figures without a caption: {view['figures_without_caption']}"
                 for page, view in rendered.items() if view["figures_without_caption"]]
    problems += [f"{page}: a chapter without a figure" for page, view in rendered.items()
                 if is_chapter(page) and view["images"] == 0]
    assert not problems, "\n".join(problems)


def test_no_page_shows_an_error_in_the_browser(rendered):
    problems = []
    for page, view in rendered.items():
        if "Traceback" in view["visible"] or re.search(r"\b\w*Error: ", view["visible"]):
            line = next(li for li in view["visible"].splitlines() if "Traceback" in li or "Error: " in li)
            problems.append(f"{page}: error text shown: {line[:160]!r}")
        if view["tracebacks"]:
            problems.append(f"{page}: {view['tracebacks']} cell output(s) with an error")
        if view["stderr"]:
            problems.append(f"{page}: {view['stderr']} cell output(s) printed to stderr (warnings) are shown")
        problems += [f"{page}: browser console: {message[:200]}" for message in view["console"]]
    assert not problems, "\n".join(problems)


def test_chapters_have_launch_and_download_buttons(rendered, site):
    repository = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["repository"]
    owner_repo = repository["url"].removeprefix("https://github.com/").strip("/")
    for page, view in rendered.items():
        if not is_chapter(page):
            continue
        name = Path(page).stem
        branch, notebook_path = repository["branch"], f"book/chapters/{name}.ipynb"
        binder = f"https://mybinder.org/v2/gh/{owner_repo}/{branch}?urlpath=lab/tree/{notebook_path}"
        colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{notebook_path}"
        assert binder in view["launch"], f"{page}: no Binder button ({view['launch']})"
        assert colab in view["launch"], f"{page}: no Colab button ({view['launch']})"
        downloads = {Path(href).suffix: href for href in view["download"]}
        assert {".ipynb", ".md"} <= set(downloads), f"{page}: download menu offers {sorted(downloads)}"
        with urllib.request.urlopen(downloads[".md"]) as answer:
            assert answer.read().decode() == find_chapter(name).read_text(), f"{page}: the .md is not the source"
        with urllib.request.urlopen(downloads[".ipynb"]) as answer:
            notebook = json.loads(answer.read())
        first = notebook["cells"][0]
        assert "".join(first["source"]) == colab_setup_source() and "remove-cell" in first["metadata"]["tags"]
        assert any(cell.get("outputs") for cell in notebook["cells"]), f"{page}: the .ipynb is not the executed one"


def test_exercises_are_numbered_and_solutions_open_on_click(html_dir, site, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    for chapter, name in enumerate(toc_chapters(), start=1):
        browser.get(f"{site}/book/chapters/{name}.html")
        try:  # the page must have loaded (a loaded page with no exercise still fails here)
            exercises = WebDriverWait(browser, 15).until(expected_conditions.presence_of_all_elements_located(
                (By.CSS_SELECTOR, "div.exercise > p.admonition-title")))
        except TimeoutException:
            exercises = []
        assert exercises, f"{name}: a chapter ends with exercises"
        numbers = [re.match(r"Exercise (\d+\.\d+)", e.text).group(1) for e in exercises]
        assert numbers == [f"{chapter}.{i}" for i in range(1, len(numbers) + 1)], f"{name}: exercises {numbers}"
        solutions = browser.find_elements(By.CSS_SELECTOR, "div.solution")
        assert solutions, f"{name}: exercises come with solutions"
        for solution in solutions:
            title = solution.find_element(By.CSS_SELECTOR, "p.admonition-title")
            body = solution.find_element(By.CSS_SELECTOR, "section")
            assert re.match(rf"Solution to\s*Exercise {chapter}\.\d+", title.text), title.text
            assert not body.is_displayed(), f"{name}: '{title.text}' is not hidden"
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", title)
            title.find_element(By.CSS_SELECTOR, "button.toggle-button").click()
            browser.execute_script("return new Promise(r => setTimeout(r, 300))")
            assert body.is_displayed(), f"{name}: '{title.text}' does not open on click"


def test_screenshots_of_every_page_are_saved(rendered):
    for page in rendered:
        shot = SCREENSHOTS / (page.removesuffix(".html").replace("/", "__") + ".png")
        assert shot.exists() and shot.stat().st_size > 10_000, shot


def test_internal_links_resolve(site, tmp_path):
    """LinkChecker follows every internal link and anchor of the site (external ones are not fetched)."""
    config = tmp_path / "linkcheckerrc"
    # LinkChecker reads this, then (run as root) drops to the user nobody: it fetches the pages over
    # http from this process, so the private temporary directories do not stand in its way.
    config.write_text("[checking]\nthreads=4\nmaxrequestspersecond=200\n[AnchorCheck]\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "linkchecker"), "--config", str(config), "--no-status", "--verbose",
         "--output", "csv", f"{site}/index.html"],
        capture_output=True, text=True, timeout=240, check=False)
    rows = list(csv.DictReader(io.StringIO("".join(
        line + "\n" for line in done.stdout.splitlines() if line and not line.startswith("#"))), delimiter=";"))
    assert len(rows) > 50, f"LinkChecker checked only {len(rows)} URLs:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    broken = [f"{r['url']} (on {r['parentname']}): {r['result']}" for r in rows if r["valid"] != "True"]
    broken += [f"{r['url']} (on {r['parentname']}): {r['warningstring']}" for r in rows
               if "anchor" in r["warningstring"].lower()]
    assert not broken, "\n".join(broken)
