"""The book's "Stored runs" page: every run in the results store, its parameters, and how to see it.

``book/runs.md`` is prose; it includes ``_generated/runs.md``, which :func:`write_runs_table`
writes at each build from the store (:func:`fmlib.book.store.collect`):

- per chapter, one row per stored run: the parameters that differ from the defaults (a run with
  every default is marked "defaults", and links to the chapter's page, which shows it), when it
  finished, how long it took, whether the notebook or fmlib changed since ("stale"), and the
  ``python -m fmlib show`` command that renders it as a page of its own;
- per helper notebook that sweeps run point by point (``cosine_point``), one entry for the whole
  sweep: how many points, the values each varied parameter took, and the sweep's figure
  (:func:`sweep_figure`): the result the notebook names in its front matter against the parameter
  it names, one line per value of the others::

      fmlib:
        sweep_figure: {x: d, y: t_star, log_x: true}

  The chapter that reads the sweep (chapter 3 with ``-p source sweep``) draws its own analysis.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from fmlib.book.chapters import chapter_names, find_chapter, markdown_cell, runnable_names, write_text_if_changed
from fmlib.book.course import chapter_title
from fmlib.book.params import read_parameters, shell_value
from fmlib.book.store import collect

__all__ = ["changed_parameters", "show_command", "sweep_figure", "write_runs_table"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _absent(value: Any) -> bool:
    """A float NaN: no chapter parameter takes it (the intervals refuse it), so it marks a missing value."""
    return isinstance(value, float) and math.isnan(value)


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
        # a parameter the chapter gained after this run was stored comes back from the frame as NaN
        missing = [key for key in specs if key not in row or _absent(row[key])]
        params = {key: row[key] for key in specs if key not in missing}
        changed = changed_parameters(name, params)
        shown = ", ".join(f"`{key}` {shell_value(value)}" for key, value in changed.items()) or "**defaults**"
        stale = " (stale: the notebook or fmlib changed since)" if row.get("stale") else ""
        if missing:
            stale += " (an earlier version of the chapter, without " + ", ".join(f"`{k}`" for k in missing) + ")"
        if not changed and not row.get("stale"):
            see = f"the chapter's page, {{doc}}`/book/chapters/{name}`"
        else:
            see = f"`{show_command(name, params)}`"
        seconds = row.get("seconds")
        took = f"{seconds:.0f} s" if isinstance(seconds, (int, float)) and math.isfinite(seconds) else ""
        lines.append(f"| {markdown_cell(shown)}{stale} | {row.get('finished') or ''} | {took} | {markdown_cell(see)} |")
    return [*lines, ""]


def sweep_figure(name: str, frame: Any, path: Path) -> Path | None:
    """Draw the sweep of helper notebook ``name`` (its stored points, ``frame``) into ``path``; None if undeclared.

    The notebook's front matter ``fmlib: sweep_figure: {x, y, log_x}`` names the parameter on the
    horizontal axis and the result on the vertical one; each combination of the other varied
    parameters is one line, labelled with their values. Points whose result is not finite (a
    censored crossing) are left out and counted in the title.
    """
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    spec = jupytext.read(find_chapter(name)).metadata.get("fmlib", {}).get("sweep_figure")
    if not spec or spec["x"] not in frame or spec["y"] not in frame:
        return None
    x, y = spec["x"], spec["y"]
    others = [k for k in read_parameters(find_chapter(name)) if k in frame and k != x
              and frame[k].map(shell_value).nunique() > 1]
    values = frame[y].map(lambda v: float(v) if isinstance(v, (int, float)) else math.nan)
    finite = np.isfinite(values.to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    groups = frame[finite].groupby(others) if others else [((), frame[finite])]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k} {shell_value(v)}" for k, v in zip(others, key, strict=True)) or y
        part = part.sort_values(x)
        ax.plot(part[x], values[part.index], marker="o", label=label)
    ax.set(xlabel=x, ylabel=y, xscale="log" if spec.get("log_x") else "linear",
           title=f"sweep of {name}: {int(finite.sum())} point(s)"
                 + (f", {int((~finite).sum())} without a finite {y} (not drawn)" if (~finite).any() else ""))
    if others:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    if not (path.is_file() and path.read_bytes() == image.getvalue()):  # unchanged: the build's cache holds
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # written aside, then renamed: never half
        partial.write_bytes(image.getvalue())
        os.replace(partial, path)
    return path


def _sweep_rows(name: str, directory: Path) -> list[str]:
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
    drawn = sweep_figure(name, frame, directory / f"sweep-{name}.png")
    figure = [f"![The stored points of the sweep of {name}: a result against a varied parameter, one line per "
              f"value of the others.](_generated/{drawn.name})", ""] if drawn else []
    return [f"**Sweep of `{name}`** (a helper notebook, not a chapter): {len(frame)} stored point(s)"
            + (f", {stale} stale" if stale else "") + ".", "",
            "Varied: " + ("; ".join(varied) if varied else "nothing (one point)") + ".", "",
            f"Any point renders as a page with `python -m fmlib show {name} -p NAME VALUE ...`.", "",
            *figure]


def write_runs_table(path: Path) -> Path:
    """Write the Markdown of the stored runs (chapters first, then sweeps) to ``path``, if it changed."""
    chapters = chapter_names()
    lines: list[str] = []
    for name in chapters:
        lines += _chapter_rows(name)
    for name in runnable_names():
        if name not in chapters:
            lines += _sweep_rows(name, path.parent)
    if not lines:
        lines = ["No run is stored yet: `python -m fmlib run NAME` stores one (see {ref}`rerun`)."]
    write_text_if_changed(path, "\n".join(lines) + "\n")
    return path
