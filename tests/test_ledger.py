"""The claims ledger page: one row per claim of the catalogue, verdicts from the runs, written atomically."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fmlib.book.claims import CLAIMS
from fmlib.book.ledger import ledger_rows, write_ledger_page
from fmlib.book.run import RunResult

COLUMNS = ("verdict", "paper", "where", "claim", "number", "chapter")


def fake_run(tmp_path: Path, name: str, claims: dict[str, dict[str, str]], **results: object) -> RunResult:
    """A stored run of chapter ``name`` whose results.json holds ``claims`` (as record_finding writes them)."""
    path = tmp_path / name / "0123456789ab"
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"claims": claims, **results}))
    return RunResult(name, path, {}, executed=True)


def table_rows(page: str) -> list[list[str]]:
    """The ledger's table body, split on the pipes that are not escaped."""
    lines = [line for line in page.splitlines() if line.startswith("| ")][1:]  # without the header
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_without_runs_every_claim_has_a_row_not_checked_yet():
    rows = ledger_rows([])
    assert [row["id"] for row in rows] == list(CLAIMS)
    for row, (claim_id, claim) in zip(rows, CLAIMS.items(), strict=True):
        assert row["verdict"] == "not checked yet", claim_id
        assert row["number"] == "" and row["chapter"] == ""
        assert (row["paper"], row["where"], row["claim"]) == (claim.paper, claim.where, claim.statement)


def test_verdicts_come_from_the_runs_and_unchecked_claims_stay(tmp_path):
    checked = {"closed-form": {"number": "max error 1e-15", "verdict": "reproduced"},
               "concentration": {"number": "bound holds at 3 of 4 times", "verdict": "partly reproduced"}}
    rows = {row["id"]: row for row in ledger_rows([fake_run(tmp_path, "01_closed_form", checked, slope=-0.5)])}
    assert len(rows) == len(CLAIMS)
    assert rows["closed-form"]["verdict"] == "reproduced"
    assert rows["closed-form"]["number"] == "max error 1e-15"
    assert rows["closed-form"]["chapter"] == "{doc}`01_closed_form`"
    assert rows["concentration"]["verdict"] == "partly reproduced"
    unchecked = [claim_id for claim_id, row in rows.items() if row["verdict"] == "not checked yet"]
    assert sorted(unchecked) == sorted(set(CLAIMS) - set(checked))


def test_a_later_run_overrides_and_unknown_claims_are_ignored(tmp_path):
    first = fake_run(tmp_path, "01_closed_form", {"span": {"number": "1e-3", "verdict": "partly reproduced"}})
    second = fake_run(tmp_path, "02_concentration", {"span": {"number": "1e-12", "verdict": "reproduced"},
                                                     "no-such-claim": {"number": "1", "verdict": "reproduced"}})
    rows = ledger_rows([first, second])
    assert [row["id"] for row in rows] == list(CLAIMS)
    span = next(row for row in rows if row["id"] == "span")
    assert (span["number"], span["verdict"]) == ("1e-12", "reproduced")
    assert span["chapter"] == "{doc}`02_concentration`"


def test_page_has_one_table_row_per_claim_and_a_summary(tmp_path):
    run = fake_run(tmp_path, "01_closed_form", {"closed-form": {"number": "1e-15", "verdict": "reproduced"}})
    page_path = tmp_path / "claims_ledger.md"
    write_ledger_page([run], page_path)
    page = page_path.read_text()
    assert page.startswith("(claims-ledger)=\n# Claims ledger\n")
    assert "| " + " | ".join(("verdict", "paper", "where", "claim", "our number", "chapter")) + " |" in page
    rows = table_rows(page)
    assert len(rows) == len(CLAIMS)
    assert all(len(row) == len(COLUMNS) for row in rows)
    assert f"Verdicts: 1 reproduced, {len(CLAIMS) - 1} not checked yet." in page


def test_pipes_and_newlines_in_cells_are_escaped(tmp_path):
    number = "a | b\nsecond line"
    run = fake_run(tmp_path, "01_closed_form", {"closed-form": {"number": number, "verdict": "reproduced"}})
    page_path = tmp_path / "claims_ledger.md"
    write_ledger_page([run], page_path)
    row = next(row for row in table_rows(page_path.read_text()) if row[0] == "reproduced")
    assert len(row) == len(COLUMNS), row
    assert row[COLUMNS.index("number")] == "a \\| b second line"


def test_the_page_is_written_atomically(tmp_path, monkeypatch):
    page_path = tmp_path / "claims_ledger.md"
    write_ledger_page([], page_path)
    assert [p.name for p in tmp_path.iterdir()] == ["claims_ledger.md"], "no temporary file may be left"
    before = page_path.read_text()

    def interrupted(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise KeyboardInterrupt("killed while writing")

    run = fake_run(tmp_path, "01_closed_form", {"closed-form": {"number": "1e-15", "verdict": "reproduced"}})
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_ledger_page([run], page_path)
    assert page_path.read_text() == before, "an interrupted write must leave the old page whole"


def test_the_ledger_shows_each_verdict_a_rule_computes_from_contrary_numbers(tmp_path, monkeypatch):
    """Rules fed numbers that give each outcome, recorded as a chapter records them: the page shows all three."""
    from fmlib.book.report import record_finding
    from fmlib.experiments.concentration import concentration_rule
    from fmlib.experiments.stochastic_target import collapse_time_rule, losses_equivalence_rule
    from fmlib.experiments.verdicts import Verdict
    from tests.test_concentration_experiments import HOLDS
    from tests.test_stochastic_target_experiments import exponents

    findings = [
        losses_equivalence_rule({"gaussian": ([8, 64, 512], [0.4, 0.2, 0.05]), "digits": ([64], [0.08])}),
        concentration_rule(HOLDS),  # the reconstruction holds, the paper's statement could not be read
        collapse_time_rule(exponents(alpha=(1.0, 0.9, 1.1), beta_n=(1.0, 0.9, 1.1), beta_d=(0.2, 0.1, 0.3))),
    ]
    assert {f.verdict for f in findings} == set(Verdict)
    path = tmp_path / "01_closed_form" / "0123456789ab"
    path.mkdir(parents=True)
    monkeypatch.setenv("FMLIB_OUTPUT_DIR", str(path))
    for finding in findings:
        record_finding(finding)
    page_path = tmp_path / "claims_ledger.md"
    write_ledger_page([RunResult("01_closed_form", path, {}, executed=True)], page_path)
    verdicts = {row[0] for row in table_rows(page_path.read_text())}
    assert {"reproduced", "partly reproduced", "not reproduced", "not checked yet"} <= verdicts
