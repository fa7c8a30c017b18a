"""The claims ledger page: the catalogue of :mod:`fmlib.book.claims` joined with the chapters' verdicts.

Generated at every book build from the runs' ``results.json`` (never typed by hand): one row per
claim with the paper, where in it, the claim, our number, the chapter that checks it and the
verdict; claims no chapter checks yet keep their row, marked "not checked yet".
"""

from __future__ import annotations

from pathlib import Path

from fmlib.book.chapters import markdown_cell, write_text_if_changed
from fmlib.book.claims import CLAIMS
from fmlib.book.report import NOT_CHECKED
from fmlib.book.run import RunResult

__all__ = ["ledger_rows", "write_ledger_page"]


COLUMNS = ("verdict", "paper", "where", "claim", "number", "chapter")
"""The ledger table's columns, in order."""


def ledger_rows(runs: list[RunResult]) -> list[dict[str, str]]:
    """One dict per claim of the catalogue with paper, where, claim, number, chapter, verdict."""
    verdicts: dict[str, tuple[str, dict[str, str]]] = {}
    for run in runs:
        for claim_id, verdict in run.results.get("claims", {}).items():
            verdicts[claim_id] = (run.name, verdict)
    rows = []
    for claim_id, claim in CLAIMS.items():
        chapter, verdict = verdicts.get(claim_id, ("", {"number": "", "verdict": NOT_CHECKED}))
        rows.append({
            "id": claim_id, "paper": claim.paper, "where": claim.where, "claim": claim.statement,
            "number": verdict["number"], "chapter": f"{{doc}}`{chapter}`" if chapter else "",
            "verdict": verdict["verdict"],
        })
    return rows


def write_ledger_page(runs: list[RunResult], path: Path) -> None:
    """Write the ledger as a MyST page at ``path`` (atomically)."""
    rows = ledger_rows(runs)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in dict.fromkeys(r["verdict"] for r in rows)}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    lines = [
        "(claims-ledger)=",
        "# Claims ledger",
        "",
        "Every claim of the sources that this book checks, with our number and the chapter that measures it. "
        "This page is generated at each build from the chapters' recorded results (`fmlib/ledger.py`, catalogue "
        "in `fmlib/claims.py`); rows no chapter checks yet stay, marked so.",
        "",
        f"Verdicts: {summary}.",
        "",
        # A section, so that the page has the in-page contents sidebar: sphinx-book-theme's script for
        # full-width content expects it (without it every visit logs a TypeError).
        "## Claims and verdicts",
        "",
        ":::{div} full-width",  # the table may use the right margin too: every column stays in view
        "| verdict | paper | where | claim | our number | chapter |",
        "|---|---|---|---|---|---|",
    ]
    # The verdict comes first: where a table is too wide, its last column is the one that scrolls out of view.
    lines += [
        "| " + " | ".join(markdown_cell(r[k]) for k in COLUMNS) + " |"
        for r in rows
    ]
    lines.append(":::")
    write_text_if_changed(path, "\n".join(lines) + "\n")
