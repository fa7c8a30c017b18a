"""Build the book: run every chapter through the runner, place the executed notebooks, render HTML.

``python -m fmlib book`` builds into ``OUTPUT/_build`` (``OUTPUT`` is the repository, or a
temporary directory in the tests); nothing is written into the repository's ``book/``:

1. copy the book's sources (``_config.yml``, ``_toc.yml``, ``references.bib``, ``book/``, the
   chapters' ``notebooks/*.md``) into the source folder ``OUTPUT/_build/source``
   (:func:`stage_sources`; a file is rewritten only when its content changed, so Sphinx's cache
   holds);
2. for each chapter ``_toc.yml`` lists under ``book/chapters/``, run ``notebooks/NAME.md`` with its
   defaults (``--quick``: with the tiny parameters of its front matter) through
   :func:`fmlib.book.run.run_chapter` (skipped when the notebook, its parameters and fmlib are
   unchanged) and copy the executed notebook to ``SOURCE/book/chapters/NAME.ipynb``, with a hidden
   first cell that sets the notebook up when a reader opens it on Colab (:func:`launch_notebook`);
3. write the generated pages (the claims ledger) into ``SOURCE/book/chapters/``, the generated
   tables of the course guide and the list of stored runs into ``SOURCE/book/_generated/``
   (:mod:`fmlib.book.course`, :mod:`fmlib.book.runs`);
4. run ``jupyter-book build`` with warnings as errors, then fail if any page shows a traceback.
   Only pages whose sources changed are rendered again, unless the last build failed (then all).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from fmlib.book.chapters import NOTEBOOK_DIR, REPO_ROOT, find_chapter, quick_parameters, write_text_if_changed
from fmlib.book.run import ChapterError, RunResult, run_chapter

__all__ = ["SOURCE_ITEMS", "build_book", "check_html", "colab_setup_source", "launch_notebook", "stage_sources",
           "toc_chapters"]

COLAB_CHECKOUT = "/content/fmbook"
SOURCE_ITEMS = ("_config.yml", "_toc.yml", "references.bib", "book", "notebooks", "benchmarks/results")
"""What :func:`stage_sources` copies from the repository into the build's source folder."""
_GENERATED = ("book/chapters", "book/_generated")  # written by the build, never copied from the repository


def stage_sources(source: Path, repo: Path = REPO_ROOT) -> Path:
    """Copy the book's sources (:data:`SOURCE_ITEMS`, only ``.md`` of ``notebooks/``) into ``source``.

    Files whose content is unchanged are left alone; files gone from the repository are removed
    from ``source``, except the generated ones (``book/chapters``, ``book/_generated``).
    """
    wanted: set[Path] = set()
    for item in SOURCE_ITEMS:
        path = repo / item
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
        for file in files:
            relative = file.relative_to(repo)
            if any(relative.as_posix().startswith(g + "/") for g in _GENERATED) or "__pycache__" in relative.parts:
                continue
            if relative.parts[0] == "notebooks" and file.suffix != ".md":
                continue
            wanted.add(relative)
            target = source / relative
            if not (target.is_file() and target.read_bytes() == file.read_bytes()):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(file, target)  # a fresh modification time: Sphinx rebuilds what changed, even
                # a file edited while an earlier build ran (its own, older time would look already built)
    for old in [f for f in source.rglob("*") if f.is_file()]:
        relative = old.relative_to(source)
        if relative not in wanted and not any(relative.as_posix().startswith(g + "/") for g in _GENERATED):
            old.unlink()
    return source


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
    cell = nbformat.v4.new_code_cell(colab_setup_source(), metadata={"tags": ["remove-cell"]}, id="fmlib-colab-setup")
    notebook.cells.insert(0, cell)
    write_text_if_changed(target, nbformat.writes(notebook))


def run_chapters(chapters_dir: Path, *, quick: bool = False) -> list[RunResult]:
    """Run (or find stored) every chapter and copy its executed notebook into ``chapters_dir``."""
    chapters_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in toc_chapters():
        overrides = quick_parameters(find_chapter(name)) if quick else {}
        print(f"[book] chapter {name}{' (quick parameters)' if quick else ''}", flush=True)
        run = run_chapter(name, overrides)
        print(f"[book]   {'executed' if run.executed else 'unchanged, taken from'} {run.path}", flush=True)
        launch_notebook(run.notebook, chapters_dir / f"{name}.ipynb")
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

    Sources and generated pages go to ``output/_build/source``, the HTML to ``output/_build/html``
    (tests build into a temporary ``output``; the repository's ``book/`` is never written).
    """
    from fmlib.book.course import write_course_tables
    from fmlib.book.ledger import write_ledger_page
    from fmlib.book.runs import write_runs_table

    build = output / "_build"
    source = stage_sources(build / "source")
    runs = run_chapters(source / "book" / "chapters", quick=quick)
    write_ledger_page(runs, source / "book" / "chapters" / "claims_ledger.md")
    write_course_tables([run.name for run in runs], source / "book" / "_generated")
    write_runs_table(source / "book" / "_generated" / "runs.md")
    passed = build / ".last-build-passed"
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(source), "--warningiserror",
               "--nitpick", "--keep-going", "--path-output", str(output)]
    if not passed.exists():
        command.append("--all")  # the last build failed or there was none: its cached pages may hide warnings
    passed.unlink(missing_ok=True)
    print("[book] jupyter-book " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=source, check=False)
    html_dir = build / "html"
    if done.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {done.returncode}); see the warnings above")
    check_html(html_dir)
    passed.write_text("")
    return html_dir
