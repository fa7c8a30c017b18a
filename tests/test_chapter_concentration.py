"""The concentration chapter runs end to end with its tiny front-matter parameters; its stored numbers make sense."""

from __future__ import annotations

import pandas as pd
import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.experiments.verdicts import Verdict

CHAPTER = "concentration"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    assert quick_parameters(find_chapter(CHAPTER)), "the chapter must declare tiny test parameters in its front matter"
    run = quick_run(CHAPTER)
    assert run.notebook.exists()
    results = run.results
    # the verdict comes from the rule: our reconstruction holds, the paper's statement was not compared
    claim = results["claims"]["concentration"]
    assert claim["verdict"] == Verdict.PARTLY.value
    assert f"at 0 of {results['n_bound_tests']} grid tests" in claim["number"] and claim["rule"]
    assert results["n_bound_violations"] == 0 and results["n_bound_tests"] > 0
    assert results["limit_bound"] < results["level_shown"]
    # the exact law: pathwise to round-off, and not rejected after the Bonferroni correction
    assert results["law_spread_max"] < 1e-8
    assert results["law_min_p"] >= results["law_threshold"]
    assert results["law_min_p_bonferroni"] >= results["alpha_shown"]
    # bookkeeping: the prose's Bonferroni threshold is alpha over the number of tests it shows
    assert results["law_threshold"] == pytest.approx(results["alpha_shown"] / results["n_law_tests"])
    assert results["bound_min_p"] >= results["bound_threshold"]
    # the bound is never below the exact simplex probability, and is later than the measurement on digits
    # (slack_max_ratio >= 1 holds by construction, the bound being exact at N = 2: a format check only)
    assert results["slack_at_tstar_max"] >= 1.0 and results["slack_max_ratio"] >= 1.0
    assert 0.0 <= results["plane_shift_min"] <= results["plane_shift_max"] < 0.05
    assert results["digits_t_bound"] > results["digits_t_union"] >= results["digits_t_measured"] - 0.05
    # the bound's concentration time is later for a smaller separation, and d does not move a fixed simplex
    # monotone by the bound's formula; this catches separations glued in the wrong order, not a physics bug
    assert results["plane_t_star_first"] > results["plane_t_star_last"]
    assert results["embedded_t_range"] < 0.05
    # fresh Gaussian data concentrate earlier in high d, through their separation
    assert results["gauss_t_high_d"] < results["gauss_t_low_d"]
    assert results["gauss_ratio_high_d"] > results["gauss_ratio_low_d"]
    assert results["gauss_t_low_d_text"] == f"{results['gauss_t_low_d']:.3f}"
    for name in ("fig_law", "fig_vs_t", "fig_dims", "fig_slack", "fig_heat", "fig_gauss", "fig_digits"):
        assert (run.path / "figures" / f"{name}.png").exists(), name
    for name in ("law_table", "dims_table", "slack_table", "uneven_table", "gauss_table"):
        table = pd.read_csv(run.path / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        text = table.to_string().lower()
        assert "nan" not in text and "inf" not in text, (name, text)
        assert not any("_" in column for column in table.columns), (name, list(table.columns))
    law_table = pd.read_csv(run.path / "tables" / "law_table.csv")
    assert law_table["data sets"].sum() == results["law_n_configs"]
