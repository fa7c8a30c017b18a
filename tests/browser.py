"""Helpers to look at the built book as a reader does: a local web server and headless Chromium.

Used by ``tests/test_book.py``. Nothing is downloaded: the browser is Debian's ``chromium`` with its
``chromedriver`` (``make browser`` installs both), driven by selenium through an explicit driver
path, so selenium-manager never runs. The pages load MathJax from its CDN; the server rewrites that
one URL to a local copy of the same release (MathJax 3.2.2, from the PyPI package
``django-static-mathjax``), so the check runs offline with the MathJax readers get.
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
from urllib.parse import unquote, urlsplit

import pytest

CHROMIUM = Path(os.environ.get("FMLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("FMLIB_CHROMEDRIVER", "/usr/bin/chromedriver"))
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
LOCAL_MATHJAX = "/__mathjax__/"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000", "--hide-scrollbars",
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


class _BookRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built HTML, with MathJax's CDN URL pointed at the local copy."""

    mathjax_root: Path

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if route.startswith(LOCAL_MATHJAX):
            return str(self.mathjax_root / route[len(LOCAL_MATHJAX):])
        return super().translate_path(path)

    def do_GET(self) -> None:
        target = Path(self.translate_path(self.path))
        if target.is_file() and target.suffix == ".html":
            body = target.read_bytes().replace(MATHJAX_CDN.encode(), LOCAL_MATHJAX.encode())
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

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


def mathjax_root() -> Path:
    """The local copy of MathJax 3 (its ``es5/`` folder is what the CDN URL's ``mathjax@3/`` holds)."""
    import mathjax  # the PyPI package django-static-mathjax: MathJax 3.2.2's files

    return Path(mathjax.__file__).parent / "static" / "mathjax"


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on http://127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = type("Handler", (_BookRequestHandler,), {"mathjax_root": mathjax_root()})
    server = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
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
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
