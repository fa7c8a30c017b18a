"""What a chapter reports: numbers, figures, tables and claim verdicts, glued and stored.

Inside a chapter, every quoted number goes through :func:`record` (myst-nb ``glue``, placed in
the prose with ``{glue:text}``), every figure through :func:`record_figure` and every table
through :func:`record_table`. When the runner executes the chapter it sets ``$FMLIB_OUTPUT_DIR``;
the values then also land in that run's ``results.json``, ``figures/`` and ``tables/``, which the
sweeps, the claims ledger and the tests read. Outside the runner only the glue happens.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from myst_nb import glue

from fmlib.book.chapters import write_json_atomic
from fmlib.experiments.verdicts import Finding, Verdict

__all__ = [
    "MISSING",
    "NOT_CHECKED",
    "VERDICTS",
    "format_cell",
    "output_dir",
    "record",
    "record_figure",
    "record_finding",
    "record_table",
    "rerun_box",
]

NOT_CHECKED = "not checked yet"
"""What the ledger shows for a claim no stored run has a finding on."""

VERDICTS = (*(v.value for v in Verdict), NOT_CHECKED)


def output_dir() -> Path | None:
    """The run's output directory when executed by the runner, else None."""
    value = os.environ.get("FMLIB_OUTPUT_DIR")
    return Path(value) if value else None


def _update_results(key: str, value: Any) -> None:
    out = output_dir()
    if out is None:
        return
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = value
    write_json_atomic(path, results)


def _plain(value: Any) -> Any:
    """A JSON-ready Python value (numpy and torch scalars become floats or ints)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def record(key: str, value: Any, *, display: bool = False) -> Any:
    """Glue ``value`` under ``key`` for the prose and store it in the run's results; returns it."""
    value = _plain(value)
    if isinstance(value, (list, tuple)):
        value = [_plain(v) for v in value]
    glue(key, value, display=display)
    _update_results(key, value)
    return value


def record_figure(key: str, fig: Figure, *, display: bool = False) -> Figure:
    """Glue a matplotlib figure (placed with ``{glue:figure}``) and save it as ``figures/KEY.png``."""
    out = output_dir()
    if out is not None:
        (out / "figures").mkdir(exist_ok=True)
        fig.savefig(out / "figures" / f"{key}.png", dpi=110, bbox_inches="tight")
    glue(key, fig, display=display)
    return fig


SIGNIFICANT_DIGITS = 4
"""Significant digits of a float in a recorded table on the page (the run's CSV keeps every digit)."""

MISSING = "\u2013"
"""What a table cell shows for a value that is missing or not finite (an en dash)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def format_cell(value: Any) -> tuple[str, str]:
    """A table cell as the page shows it: ``(text, kind)`` with kind ``num``, ``text`` or ``missing``.

    Floats get :data:`SIGNIFICANT_DIGITS` significant digits, integers all theirs; NaN, None and
    infinities (also written as text) become :data:`MISSING` (the table's note says which); booleans
    "yes"/"no"; a number the chapter already formatted as text keeps its digits and is aligned as a number.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING, "missing"
    if isinstance(value, str) and value.strip().lower() in _NOT_FINITE_TEXT:
        return MISSING, "missing"  # a number formatted as text before it was recorded
    if isinstance(value, (bool, np.bool_)):
        return ("yes" if value else "no"), "text"
    if _is_number(value):
        if not math.isfinite(float(value)):
            return MISSING, "missing"
        if isinstance(value, (int, np.integer)):
            return str(int(value)), "num"
        return format(float(value), f".{SIGNIFICANT_DIGITS}g").replace("e+0", "e+").replace("e-0", "e-"), "num"
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return value.strip(), "num"  # formatted by the chapter: kept as written, aligned as a number
    return str(value), "text"


_NUMBER_TEXT = re.compile(r"[-+\u2212]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?( ?%)?")
_NOT_FINITE_TEXT = {"nan", "inf", "+inf", "-inf", "infinity", "-infinity", "\u2212inf"}


def _gap_word(value: Any) -> str:
    """What a dash stands for, in words a reader needs: "not available" (a missing value or NaN), "inf" or "-inf"."""
    if value is None or value is pd.NA:
        return "not available"
    number = float(str(value).strip().replace("\u2212", "-")) if isinstance(value, str) else float(value)
    if math.isnan(number):
        return "not available"
    return "-inf" if number < 0 else "inf"


def _header(name: Any) -> str:
    """A column name for a reader: underscores become spaces (``n_train`` reads "n train")."""
    return str(name).replace("_", " ")


_SUBSCRIPT = re.compile(r"\b([A-Za-z])_([A-Z]+|[A-Za-z0-9])\b")
_SUPERSCRIPT = re.compile(r"\b([A-Za-z])\^([0-9])\b")
_GREEK = {"Lambda": "\N{GREEK CAPITAL LETTER LAMDA}", "lambda": "\N{GREEK SMALL LETTER LAMDA}",
          "sigma": "\N{GREEK SMALL LETTER SIGMA}", "tau": "\N{GREEK SMALL LETTER TAU}"}


def _header_html(name: Any) -> str:
    """A column name as HTML: math-like names typeset (``L_CFM`` with a subscript, ``r^2`` with a
    superscript, ``Lambda`` as a Greek letter), other underscores as spaces (:func:`_header`)."""
    text = html.escape(str(name))
    text = _SUPERSCRIPT.sub(r"\1<sup>\2</sup>", text)
    text = _SUBSCRIPT.sub(r"\1<sub>\2</sub>", text)
    text = re.sub(r"\b(" + "|".join(_GREEK) + r")\b", lambda m: _GREEK[m.group(1)], text)
    text = re.sub(r"\bMMD2\b", "MMD<sup>2</sup>", text)  # the squared MMD, written MMD2 in plain text
    return text.replace("_", " ")


class _TableView:
    """How a recorded table is shown: padded, numbers right-aligned with few digits, gaps as a dash.

    The HTML (``table.fm-table`` in a scrolling ``div.fm-table-wrap``, styled by
    ``book/static/fmlib.css``) drops the row numbers of a default index and keeps an index set on
    purpose. A value that is missing or not finite shows as a dash; a note under the table says
    which raw values (``nan``, ``inf``, ``-inf``) the dashes stand for, in which columns.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        default = table.index.equals(pd.RangeIndex(len(table))) and all(n is None for n in table.index.names)
        self.index = not default  # keep an index that names the rows

    def _frame(self) -> pd.DataFrame:
        return self.table.reset_index() if self.index else self.table

    def note(self) -> str:
        """The sentence under the table about its dashes, or "" when it has none."""
        gaps: dict[str, list[str]] = {}
        for column in self._frame().columns:
            for value in self._frame()[column]:
                if format_cell(value)[1] == "missing":
                    kinds = gaps.setdefault(_header(column), [])
                    if _gap_word(value) not in kinds:
                        kinds.append(_gap_word(value))
        if not gaps:
            return ""
        columns_of: dict[str, list[str]] = {}
        for column, kinds in gaps.items():
            columns_of.setdefault(" or ".join(kinds), []).append(column)
        where = "; ".join(f"{kind} in {', '.join(columns)}" for kind, columns in columns_of.items())
        return f"{MISSING} marks a value that is not available or not finite ({where})."

    def _repr_html_(self) -> str:
        frame = self._frame()
        levels = len(self.table.index.names) if self.index else 0
        head = "".join(f'<th scope="col">{_header_html(c)}</th>' for c in frame.columns)
        rows = []
        for record in frame.itertuples(index=False):
            cells = []
            for position, value in enumerate(record):
                text, kind = format_cell(value)
                tag = "th" if position < levels else "td"
                scope = ' scope="row"' if tag == "th" else ""
                title = f' title="{_gap_word(value)}"' if kind == "missing" else ""
                cells.append(f'<{tag}{scope} class="fm-{kind}"{title}>{html.escape(text)}</{tag}>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        note = self.note()
        note_html = f'<p class="fm-table-note">{html.escape(note)}</p>' if note else ""
        return (f'<div class="fm-table-wrap"><table class="fm-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>{note_html}')

    def __repr__(self) -> str:
        frame = self._frame().map(lambda value: format_cell(value)[0])
        frame.columns = [_header(c) for c in frame.columns]
        note = self.note()
        return frame.to_string(index=False) + (f"\n{note}" if note else "")


def record_table(key: str, table: pd.DataFrame, *, display: bool = False) -> pd.DataFrame:
    """Glue a DataFrame (placed with ``{glue:}``) and save it as ``tables/KEY.csv``.

    The page shows the table without the row numbers 0, 1, 2, ... of a default index (they mean
    nothing to a reader); an index set on purpose (``set_index``) is shown. Numbers are right-aligned
    with :data:`SIGNIFICANT_DIGITS` significant digits, a missing or infinite value is a dash with a
    note under the table, and a wide table scrolls inside the column (:class:`_TableView`). The CSV
    keeps the raw values.
    """
    out = output_dir()
    if out is not None:
        (out / "tables").mkdir(exist_ok=True)
        table.to_csv(out / "tables" / f"{key}.csv", index=False)
    glue(key, _TableView(table), display=display)
    return table


def record_finding(finding: Finding, *, display: bool = False) -> Finding:
    """Record a claim's :class:`~fmlib.experiments.verdicts.Finding` for the claims ledger, and glue it.

    The finding is stored under ``claims`` in the run's ``results.json``; the verdict is glued as
    ``verdict-KEY`` and the number as ``number-KEY``, so the prose can quote both
    (``{glue:text}`verdict-KEY```). ``display`` also shows an admonition with verdict, number and rule.
    """
    from fmlib.book.claims import CLAIMS

    if finding.claim not in CLAIMS:
        raise ValueError(f"claim {finding.claim!r} is not in fmlib.book.claims.CLAIMS; add it there first")
    glue(f"verdict-{finding.claim}", finding.verdict.value, display=False)
    glue(f"number-{finding.claim}", finding.number, display=False)
    if display:
        from IPython.display import Markdown
        from IPython.display import display as show

        show(Markdown(f":::{{admonition}} Claim `{finding.claim}`: {finding.verdict.value}\n"
                      f"Measured: {finding.number}\n\nRule: {finding.rule}\n:::"))
    out = output_dir()
    if out is not None:
        path = out / "results.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        results.setdefault("claims", {})[finding.claim] = {
            "number": finding.number, "verdict": finding.verdict.value, "rule": finding.rule,
        }
        write_json_atomic(path, results)
    return finding


def rerun_box(name: str, namespace: dict[str, Any]) -> Any:
    """The "How to re-run this chapter" box, generated from the chapter's parameters cell.

    Lists every parameter with its type, this run's value (and the default where they differ) and
    its help, and the exact command that re-runs the chapter with this run's values. ``namespace`` is the notebook's
    ``globals()``, from which this run's values are read. Returns an IPython Markdown object
    (rendered as MyST by the book).
    """
    from IPython.display import Markdown

    from fmlib.book.chapters import find_chapter
    from fmlib.book.params import describe_constraint, read_parameters
    from fmlib.book.rules import rules_for

    notebook = find_chapter(name)
    specs, rules = read_parameters(notebook), rules_for(notebook.stem)
    rows = ["| parameter | this run | meaning |", "|---|---|---|"]
    changed = []
    for spec in specs.values():
        value = namespace.get(spec.name, spec.default)
        rule = f" (allowed: {describe_constraint(spec.constraint)})" if spec.constraint else ""
        shown = f"`{value!r}`" if value == spec.default else f"`{value!r}` (default `{spec.default!r}`)"
        rows.append(f"| `{spec.name}`: {spec.type_name} | {shown} | {spec.help}{rule} |")
        if value != spec.default:
            argument = ",".join(map(str, value)) if isinstance(value, list) else value
            changed.append(f"-p {spec.name} {argument}")
    command = " ".join([f"python -m fmlib run {notebook.stem.split('_', 1)[-1]}", *changed])
    text = "\n".join([
        ":::{admonition} How to re-run this chapter",
        ":class: tip",
        "",
        "This page shows one run of the notebook; these were its parameters. Re-run it with your own values "
        "(see {ref}`rerun`):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"The command reads the chapter's source, `notebooks/{notebook.name}`; the download menu at the top of "
        "the page offers it (`.md`) and this executed notebook (`.ipynb`).",
        "",
        *rows,
        *(["", "Combinations checked before a run: " + "; ".join(r.describe() for r in rules) + "."] if rules else []),
        ":::",
    ])
    return Markdown(text)
