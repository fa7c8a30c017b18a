"""fmlib.book.report.record_finding and the Finding it records: each verdict reaches the run's results as
computed (the ledger reads them), a verdict string or an unknown claim is refused."""

from __future__ import annotations

import json

import pytest

from fmlib.book.report import record_finding
from fmlib.experiments.verdicts import Finding, Verdict


@pytest.mark.parametrize("verdict", list(Verdict))
def test_each_verdict_is_stored_as_computed(verdict, tmp_path, monkeypatch):
    monkeypatch.setenv("FMLIB_OUTPUT_DIR", str(tmp_path))
    (tmp_path / "results.json").write_text(json.dumps({"kept": 1, "claims": {"span": {"verdict": "x"}}}))
    finding = Finding("memorisation", verdict, "agreement 50%", "reproduced if agreement >= 95%")
    assert record_finding(finding) is finding
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["claims"]["memorisation"] == {"number": "agreement 50%", "verdict": verdict.value,
                                                 "rule": "reproduced if agreement >= 95%"}
    assert results["kept"] == 1 and results["claims"]["span"] == {"verdict": "x"}  # other entries untouched


def test_a_later_finding_on_the_same_claim_replaces_the_earlier(tmp_path, monkeypatch):
    monkeypatch.setenv("FMLIB_OUTPUT_DIR", str(tmp_path))
    record_finding(Finding("span", Verdict.REPRODUCED, "1e-16", "rule"))
    record_finding(Finding("span", Verdict.NOT_REPRODUCED, "0.5", "rule"))
    assert json.loads((tmp_path / "results.json").read_text())["claims"]["span"]["verdict"] == "not reproduced"


def test_unknown_claims_and_verdict_strings_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FMLIB_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"not in fmlib\.book\.claims\.CLAIMS"):
        record_finding(Finding("no-such-claim", Verdict.REPRODUCED, "1", "rule"))
    with pytest.raises(TypeError, match="must be a Verdict"):
        Finding("span", "reproduced", "1", "rule")  # a literal cannot pose as a computed verdict
    with pytest.raises(ValueError, match="needs its claim key"):
        Finding("span", Verdict.REPRODUCED, "", "rule")
    assert not (tmp_path / "results.json").exists()
