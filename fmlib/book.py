"""Build the book: run every chapter through the runner, place the executed notebooks, render HTML.

``python -m fmlib book`` does, in order:

1. for each chapter ``_toc.yml`` lists under ``book/chapters/``, run ``notebooks/NAME.md`` with its
   defaults (``--quick``: with the tiny parameters of its front matter) through
   :func:`fmlib.run.run_chapter` (skipped when the notebook, its parameters and fmlib are
   unchanged) and copy the executed notebook to ``book/chapters/NAME.ipynb``;
2. write the generated pages (the claims ledger) into ``book/chapters/``;
3. run ``jupyter-book build`` with warnings as errors, then fail if any page shows a traceback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from fmlib.results import REPO_ROOT
from fmlib.run import ChapterError, RunResult, find_chapter, quick_parameters, run_chapter

__all__ = ["GENERATED_DIR", "build_book", "check_html", "toc_chapters"]

GENERATED_DIR = REPO_ROOT / "book" / "chapters"


def toc_chapters(toc_path: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """Names of the executed chapters the table of contents points to (``book/chapters/NAME``)."""
    files = re.findall(r"file:\s*(\S+)", toc_path.read_text())
    prefix = "book/chapters/"
    names = [f[len(prefix):] for f in files if f.startswith(prefix)]
    return [n for n in names if (REPO_ROOT / "notebooks" / f"{n}.md").exists()]


def run_chapters(*, quick: bool = False) -> list[RunResult]:
    """Run (or find stored) every chapter and copy its executed notebook where ``_toc.yml`` points."""
    GENERATED_DIR.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in toc_chapters():
        overrides = quick_parameters(find_chapter(name)) if quick else {}
        print(f"[book] chapter {name}{' (quick parameters)' if quick else ''}", flush=True)
        run = run_chapter(name, overrides)
        print(f"[book]   {'executed' if run.executed else 'unchanged, taken from'} {run.path}", flush=True)
        shutil.copy(run.notebook, GENERATED_DIR / f"{name}.ipynb")
        runs.append(run)
    return runs


def check_html(html_dir: Path) -> None:
    """Fail, naming the page, if a built page shows an execution error or a traceback."""
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        if 'class="output traceback' in text or "Traceback (most recent call last)" in text:
            raise ChapterError(f"the built page {page.relative_to(html_dir)} shows a traceback")


def build_book(*, quick: bool = False, output: Path = REPO_ROOT) -> Path:
    """Run the chapters, write the generated pages, and render the HTML; returns its directory.

    The HTML goes to ``output/_build/html`` (tests build into a temporary ``output``).
    """
    from fmlib.ledger import write_ledger_page

    runs = run_chapters(quick=quick)
    write_ledger_page(runs, GENERATED_DIR / "claims_ledger.md")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO_ROOT), "--warningiserror",
               "--nitpick", "--keep-going", "--all", "--path-output", str(output)]
    print("[book] jupyter-book " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=REPO_ROOT, check=False)
    html_dir = output / "_build" / "html"
    if done.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {done.returncode}); see the warnings above")
    check_html(html_dir)
    return html_dir
