"""The book's "Stored runs" page: every run in the results store, its parameters, and how to see it.

``book/runs.md`` is prose; it includes ``_generated/runs.md``, which :func:`write_runs_table`
writes at each build from the store (:func:`fmlib.book.store.collect`):

- per chapter, one row per stored run: the parameters that differ from the defaults (a run with
  every default is marked "defaults", and links to the chapter's page, which shows it), when it
  finished, how long it took, whether the notebook or fmlib changed since ("stale"), and the
  ``python -m fmlib show`` command that renders it as a page of its own;
- per helper notebook that sweeps run point by point (``cosine_point``), one row for the whole
  sweep: how many points, and the values each varied parameter took. The sweep's figure is drawn by
  the chapter that reads the sweep (chapter 3 with ``-p source sweep``), not on this page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fmlib.book.chapters import chapter_names, find_chapter, markdown_cell, runnable_names, write_text_if_changed
from fmlib.book.course import chapter_title
from fmlib.book.params import read_parameters, shell_value
from fmlib.book.store import collect

__all__ = ["changed_parameters", "show_command", "write_runs_table"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def changed_parameters(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a run that differ from notebook ``name``'s defaults, in the cell's order."""
    specs = read_parameters(find_chapter(name))
    return {key: params[key] for key, spec in specs.items() if key in params and not _same(params[key], spec.default)}


def show_command(name: str, params: dict[str, Any]) -> str:
    """The ``python -m fmlib show`` command for the run of ``name`` with ``params``."""
    short = name.split("_", 1)[-1] if name[:2].isdigit() else name
    options = [f"-p {key} {shell_value(value)}" for key, value in changed_parameters(name, params).items()]
    return " ".join(["python -m fmlib show", short, *options])


def _chapter_rows(name: str) -> list[str]:
    frame = collect(name, include_lists=True)
    if frame.empty:
        return []
    specs = read_parameters(find_chapter(name))
    lines = [f"**{{doc}}`{chapter_title(find_chapter(name))} </book/chapters/{name}>`**", "",
             "| parameters | finished | took | see it |", "|---|---|---:|---|"]
    for row in frame.to_dict("records"):
        params = {key: row[key] for key in specs if key in row}
        changed = changed_parameters(name, params)
        shown = ", ".join(f"`{key}` {shell_value(value)}" for key, value in changed.items()) or "**defaults**"
        stale = " (stale: the notebook or fmlib changed since)" if row.get("stale") else ""
        if not changed and not row.get("stale"):
            see = f"the chapter's page, {{doc}}`/book/chapters/{name}`"
        else:
            see = f"`{show_command(name, params)}`"
        seconds = row.get("seconds")
        took = f"{seconds:.0f} s" if isinstance(seconds, (int, float)) and math.isfinite(seconds) else ""
        lines.append(f"| {markdown_cell(shown)}{stale} | {row.get('finished') or ''} | {took} | {markdown_cell(see)} |")
    return [*lines, ""]


def _sweep_rows(name: str) -> list[str]:
    frame = collect(name, include_lists=True)
    if frame.empty:
        return []
    specs = read_parameters(find_chapter(name))
    varied = []
    for key in specs:
        if key in frame:
            values = sorted({shell_value(v) for v in frame[key]}, key=lambda v: (len(v), v))
            if len(values) > 1:
                varied.append(f"`{key}`: {', '.join(values)}")
    stale = int(frame["stale"].sum()) if "stale" in frame else 0
    return [f"**Sweep of `{name}`** (a helper notebook, not a chapter): {len(frame)} stored point(s)"
            + (f", {stale} stale" if stale else "") + ".", "",
            "Varied: " + ("; ".join(varied) if varied else "nothing (one point)") + ".", "",
            f"Any point renders as a page with `python -m fmlib show {name} -p NAME VALUE ...`.", ""]


def write_runs_table(path: Path) -> Path:
    """Write the Markdown of the stored runs (chapters first, then sweeps) to ``path``, if it changed."""
    chapters = chapter_names()
    lines: list[str] = []
    for name in chapters:
        lines += _chapter_rows(name)
    for name in runnable_names():
        if name not in chapters:
            lines += _sweep_rows(name)
    if not lines:
        lines = ["No run is stored yet: `python -m fmlib run NAME` stores one (see {ref}`rerun`)."]
    write_text_if_changed(path, "\n".join(lines) + "\n")
    return path
