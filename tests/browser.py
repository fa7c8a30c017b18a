"""Helpers to look at the built book as a reader does: a local web server and headless Chromium.

Used by ``tests/test_book.py`` and ``tests/test_layout_checks.py``. Nothing is downloaded: the
browser is Debian's ``chromium`` with its ``chromedriver`` (``make browser`` installs both), driven
by selenium through an explicit driver path, so selenium-manager never runs. The network is off for
the browser: every request that is not for 127.0.0.1 goes to a proxy address where nothing listens
and every host name but 127.0.0.1 resolves to nothing, and :func:`outside_requests` lists what a
page asked for beyond 127.0.0.1 (the book ships MathJax, scripts, styles and fonts itself).
:data:`LAYOUT_PROBLEMS` is what the layout tests look for on a page: an element wider than its
column, a clipped display equation, a raw ``nan``/``inf`` in a table, a page that scrolls sideways.
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("FMLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("FMLIB_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000", "--hide-scrollbars",
    # The network is off: a proxy where nothing listens (loopback bypasses it) and no name resolves.
    "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

# Resolves when MathJax has typeset the page; "absent" on pages that do not load it (no math).
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const started = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("ready"), (err) => done("error: " + err));
  } else if (!document.querySelector('script[src*="mathjax"]')) {
    done("absent");
  } else if (Date.now() - started > 20000) {
    done("timeout: MathJax did not start within 20 s");
  } else {
    setTimeout(poll, 50);
  }
})();
"""

# Load every image now (not lazily) and resolve when all have finished, loaded or not.
WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const images = [...document.images];
images.forEach((img) => { img.loading = "eager"; });
const started = Date.now();
(function poll() {
  if (images.every((img) => img.complete) || Date.now() - started > 15000) {
    done(images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.getAttribute("src")));
  } else {
    setTimeout(poll, 50);
  }
})();
"""

# What a reader sees of the page's content: the text outside code, scripts and typeset math, and counts.
READ_PAGE = """
const article = document.querySelector("article") || document.body;
const skip = "pre, code, script, style, mjx-container, mjx-assistive-mml, .highlight";
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
const prose = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (!node.parentElement.closest(skip)) prose.push(node.nodeValue);
}
return {
  prose: prose.join(" "),
  visible: article.innerText,
  math_sources: document.querySelectorAll("span.math, div.math").length,
  typeset: document.querySelectorAll("mjx-container").length,
  math_errors: [...document.querySelectorAll("mjx-merror")].map((e) => e.textContent),
  tracebacks: document.querySelectorAll("div.output.traceback, div.output.error").length,
  stderr: document.querySelectorAll("div.output.stderr").length,
  mathjax_src: [...document.querySelectorAll('script[src*="mathjax"]')].map((s) => s.src),
  images_without_alt: [...article.querySelectorAll("img")].filter((i) => !(i.alt || "").trim())
    .map((i) => i.getAttribute("src")),
  figures_without_caption: [...article.querySelectorAll("figure")]
    .filter((f) => !(f.querySelector("figcaption") || {textContent: ""}).textContent.trim()).map((f) => f.id),
};
"""


# What a reader would see as broken layout, at the window's width (1280 px):
# - an element wider than its column (or sticking out to the left) that no scroll container holds;
#   the column is the article's container, or for content inside `.full-width` the viewport;
# - a display equation whose right part is cut off by an ancestor that hides overflow, or that runs
#   past the window (an equation that scrolls is fine);
# - a table cell that shows a raw nan, inf or -inf;
# - a page wider than the window (it scrolls sideways).
LAYOUT_PROBLEMS = """
const article = document.querySelector("article") || document.body;
const columnBox = (document.querySelector(".bd-article-container") || article).getBoundingClientRect();
const viewport = document.documentElement.clientWidth;
const overflowX = (el) => getComputedStyle(el).overflowX;
const scrolls = (el) => ["auto", "scroll"].includes(overflowX(el));
const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
  (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\\s+/).join(".") : "");
const skip = "mjx-assistive-mml, .visually-hidden, .sr-only, script, style";
const problems = [];
const reported = new Set();
for (const el of article.querySelectorAll("*")) {
  if (el.closest(skip)) continue;
  const box = el.getBoundingClientRect();
  if (box.width === 0 || box.height === 0 || ["absolute", "fixed"].includes(getComputedStyle(el).position)) continue;
  const full = el.closest(".full-width");
  const left = full ? 0 : columnBox.left, right = full ? viewport : columnBox.right;
  if (box.right <= right + 1 && box.left >= left - 1) continue;
  let holder = el.parentElement, held = false;
  for (; holder && holder !== document.body; holder = holder.parentElement) {
    if (reported.has(holder)) { held = true; break; }
    if (scrolls(holder) && holder.getBoundingClientRect().right <= right + 1) { held = true; break; }
  }
  if (held) continue;
  reported.add(el);
  problems.push(`wider than its column: ${name(el)} spans ${Math.round(box.left)}..${Math.round(box.right)} px, ` +
                `the column ${Math.round(left)}..${Math.round(right)} px`);
}
for (const eq of article.querySelectorAll('mjx-container[display="true"], div.math')) {
  const box = eq.getBoundingClientRect();
  const contentRight = box.left + eq.scrollWidth;
  let where = "";
  for (let el = eq; el && el !== document.documentElement; el = el.parentElement) {
    if (scrolls(el)) { where = ""; break; }
    if (["hidden", "clip"].includes(overflowX(el)) && contentRight > el.getBoundingClientRect().right + 1) {
      where = `cut off by ${name(el)}`; break;
    }
    if (el === eq.parentElement && contentRight > viewport + 1) { where = "past the window"; }
  }
  if (where) problems.push(`clipped equation (${where}): ${(eq.textContent || "").trim().slice(0, 60)}`);
}
for (const cell of article.querySelectorAll("table td, table th")) {
  if (/^\\s*[-+\u2212]?(nan|inf|infinity|\u221e)\\s*$/i.test(cell.textContent)) {
    const row = cell.parentElement.textContent.trim().slice(0, 60);
    problems.push(`raw ${cell.textContent.trim()} in a table cell (row: ${row})`);
  }
}
if (document.documentElement.scrollWidth > viewport + 1) {
  problems.push(`the page is ${document.documentElement.scrollWidth} px wide, wider than the window (${viewport} px)`);
}
return problems;
"""


class _BookRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built HTML as it is."""

    def end_headers(self) -> None:
        # LinkChecker skips its politeness delay (0.1 to 0.6 s a request) for servers that send this.
        self.send_header("LinkChecker", "local test server")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection it no longer needs is not an error; anything else is reported."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on http://127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = _QuietServer(("127.0.0.1", 0), functools.partial(_BookRequestHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def require_browser() -> None:
    """Skip (or, with ``$CI`` set, fail) when Debian's chromium or chromedriver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        message = (f"{' and '.join(missing)} not found: the rendered-page checks need Debian's chromium and "
                   "chromium-driver (run `make browser`)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by selenium; nothing is downloaded and the profile is temporary."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    with tempfile.TemporaryDirectory(prefix="fmlib-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.set_script_timeout(40)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def full_page_screenshot(driver: Any, path: Path, *, width: int = 1280, max_height: int = 16000) -> None:
    """Save a PNG of the whole page: the window is made as tall as the page, then shot and restored."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height), max_height))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, 1000)


def console_errors(driver: Any) -> list[str]:
    """The page's console messages of level SEVERE (JavaScript errors, failed loads), less the favicon."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]


def outside_requests(driver: Any) -> list[str]:
    """The URLs the pages opened since the last call asked for beyond 127.0.0.1 (Chromium's network log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
                urls.append(url)
    return urls
