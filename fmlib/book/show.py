"""A page for any stored run: ``python -m fmlib show NAME -p name value ...``.

The parameters are those of ``python -m fmlib run`` and are checked the same way
(:func:`fmlib.book.rules.check_parameters`). The stored run (:mod:`fmlib.book.store`) is rendered
by the book's own machinery, so the page reads like a chapter of the book: the executed notebook
becomes the only page of a one-page Jupyter Book (same ``_config.yml``, same extensions, the same
offline MathJax and style sheet), with a box at the top that lists the run's parameters (those
that differ from the defaults marked), where it is stored, and the findings it recorded: each
claim with its verdict, our number and the rule. Figures, tables and formulas are those of the
run. The page and its ``_static/`` folder (MathJax included) are written to
``STORE/_pages/NAME/<hash>/_build/html/``; the command prints the page's path as its last line.

Nothing is computed: when no run with these parameters is stored, :class:`RunNotStored` says
which ``python -m fmlib run`` command stores it. Cross-references to other chapters of the book
render as plain text on such a page (the page stands alone).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fmlib.book.chapters import find_chapter, markdown_cell, write_text_if_changed
from fmlib.book.params import read_parameters, shell_value
from fmlib.book.rules import check_parameters
from fmlib.book.run import ChapterError
from fmlib.book.store import results_root, stored_run

__all__ = ["PAGE", "RunNotStored", "run_summary", "show_run"]

PAGE = "run"
"""The page's name in its one-page book (``.../_build/html/run.html``)."""


class RunNotStored(LookupError):
    """No run with these parameters is in the store; the message gives the command that stores one."""


def _command(verb: str, stem: str, params: dict[str, Any]) -> str:
    from fmlib.book.runs import changed_parameters

    short = stem.split("_", 1)[-1] if stem[:2].isdigit() else stem
    options = [f"-p {key} {shell_value(value)}" for key, value in changed_parameters(stem, params).items()]
    return " ".join([f"python -m fmlib {verb}", short, *options])


def run_summary(stem: str, params: dict[str, Any], results: dict[str, Any], run_path: Path, *, stale: bool) -> str:
    """The MyST box at the top of a run's page: parameters, where it is stored, and its findings."""
    specs = read_parameters(find_chapter(stem))
    rows = ["| parameter | this run | default |", "|---|---|---|"]
    for name, spec in specs.items():
        value = params.get(name, spec.default)
        changed = value != spec.default
        shown = f"**{shell_value(value)}**" if changed else shell_value(value)
        rows.append(f"| `{name}` | {markdown_cell(shown)} | {markdown_cell(shell_value(spec.default))} |")
    findings = results.get("claims", {})
    with_rule = any(found.get("rule") for found in findings.values())
    claims = ["| claim | verdict | our number |" + (" rule |" if with_rule else ""),
              "|---|---|---|" + ("---|" if with_rule else "")]
    claims += [f"| `{key}` | {markdown_cell(found.get('verdict', ''))} | {markdown_cell(found.get('number', ''))} |"
               + (f" {markdown_cell(found.get('rule', ''))} |" if with_rule else "") for key, found in findings.items()]
    warning = ("\n**Stale**: the notebook or `fmlib` changed after this run; `--force` with the run command "
               "computes it again.\n" if stale else "")
    return "\n".join([
        ":::{admonition} This page shows one stored run",
        ":class: note",
        "",
        f"Run of `{stem}`, stored in `{run_path}`. Re-create it with `{_command('run', stem, params)}`; "
        "parameters in bold differ from the defaults.",
        warning,
        *rows,
        "",
        "**Findings** (each claim this run checked, with its verdict):" if findings else "This run records no finding.",
        "",
        *(claims if findings else []),
        ":::",
    ])


def _page_notebook(run_notebook: Path, summary: str, target: Path) -> None:
    """The executed notebook with the summary box after its title, written to ``target``."""
    import nbformat

    from fmlib.book.build import launch_notebook

    launch_notebook(run_notebook, target)
    notebook = nbformat.read(target, as_version=4)
    titled = next((i for i, c in enumerate(notebook.cells)
                   if c.cell_type == "markdown" and any(line.startswith("# ") for line in c.source.splitlines())), -1)
    notebook.cells.insert(titled + 1, nbformat.v4.new_markdown_cell(summary, id="fmlib-run-summary"))
    references = "## References\n\n```{bibliography}\n:filter: docname in docnames\n```"
    notebook.cells.append(nbformat.v4.new_markdown_cell(references, id="fmlib-run-references"))
    write_text_if_changed(target, nbformat.writes(notebook))


def show_run(name: str, overrides: dict[str, Any] | None = None, *, quiet: bool = True) -> Path:
    """Render the stored run of ``name`` with these parameters as an HTML page; returns its path.

    Raises:
        ParameterError: a rejected parameter or combination (as ``run``).
        RunNotStored: no such run in the store (the message gives the ``run`` command).
        ChapterError: the page could not be rendered (the message ends with the build's last lines).
    """
    from fmlib.book.build import stage_sources

    notebook = find_chapter(name)
    params = check_parameters(notebook, overrides or {})
    stem = notebook.stem
    path = stored_run(stem, params)
    if path is None:
        raise RunNotStored(f"no run of {stem} with these parameters is stored in {results_root()}; store it with "
                           f"`{_command('run', stem, params)}`, then show it again")
    import json

    results = json.loads((path / "results.json").read_text()) if (path / "results.json").exists() else {}
    stale = stored_run(stem, params, notebook) is None
    print(f"rendering the stored run {path} (about a minute)", file=sys.stderr, flush=True)
    site = results_root() / "_pages" / stem / path.name
    source = stage_sources(site / "source")
    write_text_if_changed(source / "_toc.yml", f"format: jb-book\nroot: {PAGE}\n")
    _page_notebook(path / f"{stem}.ipynb", run_summary(stem, params, results, path, stale=stale),
                   source / f"{PAGE}.ipynb")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(source), "--path-output", str(site),
               "--keep-going", "--quiet" if quiet else "--verbose"]
    done = subprocess.run(command, cwd=source, capture_output=quiet, text=True, check=False)
    page = site / "_build" / "html" / f"{PAGE}.html"
    if done.returncode != 0 or not page.exists():
        tail = "\n".join(((done.stdout or "") + (done.stderr or "")).splitlines()[-20:])
        raise ChapterError(f"the page of {stem} could not be rendered (jupyter-book exit {done.returncode}):\n{tail}")
    return page
