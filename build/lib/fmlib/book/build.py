"""Build the book: run every chapter through the runner, place the executed notebooks, render HTML.

``python -m fmlib book`` does, in order:

1. for each chapter ``_toc.yml`` lists under ``book/chapters/``, run ``notebooks/NAME.md`` with its
   defaults (``--quick``: with the tiny parameters of its front matter) through
   :func:`fmlib.book.run.run_chapter` (skipped when the notebook, its parameters and fmlib are
   unchanged) and copy the executed notebook to ``book/chapters/NAME.ipynb``, with a hidden first
   cell that sets the notebook up when a reader opens it on Colab (:func:`launch_notebook`);
2. write the generated pages (the claims ledger) into ``book/chapters/`` and the generated tables
   of the course guide into ``book/_generated/`` (:mod:`fmlib.book.course`);
3. run ``jupyter-book build`` with warnings as errors, then fail if any page shows a traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fmlib.book.chapters import NOTEBOOK_DIR, REPO_ROOT, find_chapter, quick_parameters, write_text_atomic
from fmlib.book.run import ChapterError, RunResult, run_chapter

__all__ = ["COURSE_DIR", "GENERATED_DIR", "build_book", "check_html", "colab_setup_source", "launch_notebook",
           "toc_chapters"]

GENERATED_DIR = REPO_ROOT / "book" / "chapters"
COURSE_DIR = REPO_ROOT / "book" / "_generated"
COLAB_CHECKOUT = "/content/fmbook"


def toc_chapters(toc_path: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """Names of the executed chapters the table of contents points to (``book/chapters/NAME``)."""
    files = re.findall(r"file:\s*(\S+)", toc_path.read_text())
    prefix = "book/chapters/"
    names = [f[len(prefix):] for f in files if f.startswith(prefix)]
    return [n for n in names if (NOTEBOOK_DIR / f"{n}.md").exists()]


def colab_setup_source(config_path: Path = REPO_ROOT / "_config.yml") -> str:
    """The code of the hidden set-up cell: on Colab, clone the book's repository and add what Colab lacks.

    The repository and branch are those of ``_config.yml`` (``repository.url`` and ``.branch``),
    the same ones the launch buttons point to. Anywhere but Colab the cell does nothing.
    """
    import yaml

    repository = yaml.safe_load(config_path.read_text()).get("repository", {})
    url, branch = repository.get("url", ""), repository.get("branch", "main")
    return "\n".join([
        "# Set-up on Colab only (this cell is hidden in the book and does nothing elsewhere): fetch the book's",
        "# code, which the chapter imports, and the packages Colab does not ship.",
        "import os, subprocess, sys",
        "if 'google.colab' in sys.modules:",
        f"    if not os.path.isdir({COLAB_CHECKOUT!r}):",
        "        subprocess.run(['git', 'clone', '--depth', '1', '--branch',",
        f"                        {branch!r}, {url!r}, {COLAB_CHECKOUT!r}], check=True)",
        "        subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',",
        "                        'jupytext', 'papermill', 'myst-nb'], check=True)",
        f"    sys.path.insert(0, {COLAB_CHECKOUT!r})",
    ])


def launch_notebook(executed: Path, target: Path) -> None:
    """Copy an executed chapter to ``target``, the notebook the launch and download buttons offer.

    A first code cell, tagged ``remove-cell`` (so the book does not show it), sets the notebook up
    on Colab (:func:`colab_setup_source`); Binder builds its environment from ``binder/``. The
    ``parameters`` cell and the cell papermill injected are tagged ``remove-cell`` too: the page
    shows them once, in the "How to re-run this chapter" box (:func:`fmlib.book.report.rerun_box`);
    the notebook keeps them.
    """
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")  # the page shows them in the "How to re-run this chapter" box
    cell = nbformat.v4.new_code_cell(colab_setup_source(), metadata={"tags": ["remove-cell"]})
    notebook.cells.insert(0, cell)
    write_text_atomic(target, nbformat.writes(notebook))


def run_chapters(*, quick: bool = False) -> list[RunResult]:
    """Run (or find stored) every chapter and copy its executed notebook where ``_toc.yml`` points."""
    GENERATED_DIR.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in toc_chapters():
        overrides = quick_parameters(find_chapter(name)) if quick else {}
        print(f"[book] chapter {name}{' (quick parameters)' if quick else ''}", flush=True)
        run = run_chapter(name, overrides)
        print(f"[book]   {'executed' if run.executed else 'unchanged, taken from'} {run.path}", flush=True)
        launch_notebook(run.notebook, GENERATED_DIR / f"{name}.ipynb")
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
    from fmlib.book.course import write_course_tables
    from fmlib.book.ledger import write_ledger_page

    runs = run_chapters(quick=quick)
    write_ledger_page(runs, GENERATED_DIR / "claims_ledger.md")
    write_course_tables([run.name for run in runs], COURSE_DIR)
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO_ROOT), "--warningiserror",
               "--nitpick", "--keep-going", "--all", "--path-output", str(output)]
    print("[book] jupyter-book " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=REPO_ROOT, check=False)
    html_dir = output / "_build" / "html"
    if done.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {done.returncode}); see the warnings above")
    check_html(html_dir)
    return html_dir
