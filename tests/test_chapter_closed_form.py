"""Chapter 1 (the closed form) end to end: the values its quick run stores, and a run with a solver that
ignores the field, which must stop with a message naming the claim ``memorisation``."""

from __future__ import annotations

import jupytext
import numpy as np
import pandas as pd
import pytest

import fmlib.ode
from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.experiments.verdicts import ClaimBroken, Verdict
from fmlib.ode import Solver

CHAPTER = "closed_form"
CLAIMS = ("closed-form", "cfm-minimiser", "memorisation", "span")


@pytest.mark.slow
def test_quick_run_stores_the_checked_values(quick_run):
    params = quick_parameters(find_chapter(CHAPTER))
    run = quick_run(CHAPTER)
    results = run.results
    for claim in CLAIMS:
        assert results["claims"][claim]["verdict"] == Verdict.REPRODUCED.value, claim
        assert results["claims"][claim]["rule"], claim
    # (a) float64 round-off
    assert results["bayes_weights_err"] < 1e-12 and results["bayes_velocity_err"] < 1e-10
    # (b) the slope at eps = 0 and the change of L_CFM - L_FM are zero within their errors
    assert results["cfm_max_z_min"] < 3.5 and results["cfm_max_z_gap"] < 3.5
    minimum = pd.read_csv(run.path / "tables" / "cfm_minimum_table.csv")
    assert (minimum["minimiser eps*"].abs() < 3.5 * minimum["its standard error"]).all()
    np.testing.assert_allclose(minimum["z = C / se(C)"], -minimum["minimiser eps*"] / minimum["its standard error"])
    gap = pd.read_csv(run.path / "tables" / "cfm_gap_table.csv")
    assert len(gap) == 4 and gap.loc[0, "L_FM(v)"] == 0
    np.testing.assert_allclose(gap["L_CFM - L_FM"], results["cfm_loss"], atol=4 * gap["its standard error"].max())
    # (c) landing before the last step, on the quadratic grid: t_K = 1 - 1/K^2
    assert results["last_step_start"] == pytest.approx(1 - 1 / params["ode_steps"] ** 2)
    assert results["worst_residual"] < results["residual_level"]
    # bookkeeping, not physics: the prose says the limit is twice the level; a changed rule must change the prose
    assert results["residual_limit"] == pytest.approx(2 * results["residual_level"])
    assert results["agreement"] >= 0.95 and results["law_pvalue"] >= 0.01
    assert results["worst_landing"] < 1e-8
    landing = pd.read_csv(run.path / "tables" / "landing_table.csv")
    assert list(landing["solver"]) == ["euler", "heun", "rk4"]
    assert (landing["min over samples of max weight at t_K"] > 1 - 1e-6).all()
    assert (landing["training points reached"] == params["n_train"]).all()
    # (d) the off-span law to round-off, for every solver
    assert results["span_err_worst"] < 1e-12 and results["span_end_worst"] < 1e-12
    assert len(pd.read_csv(run.path / "tables" / "span_table.csv")) == 3
    # the figure of the weights at one point: a probability vector's summaries
    assert 1 / params["n_train"] <= results["segments_max_weight"] <= 1
    assert 1 <= results["segments_effective_number"] <= params["n_train"]
    for name in ("fig_path_1d", "fig_field_2d", "fig_segments", "fig_cfm", "fig_trajectories"):
        assert (run.path / "figures" / f"{name}.png").exists(), name


def run_in_process(overrides: dict) -> dict:
    """Execute the chapter's code cells in this process (so a test can patch fmlib), parameters overridden."""
    namespace: dict = {}
    for cell in jupytext.read(find_chapter(CHAPTER)).cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(find_chapter(CHAPTER)), "exec"), namespace)
            if "parameters" in cell.metadata.get("tags", []):
                namespace.update(overrides)
    return namespace


@pytest.mark.slow
def test_a_solver_that_ignores_the_field_stops_the_chapter_on_memorisation(monkeypatch, tmp_path):
    monkeypatch.delenv("FMLIB_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    params = quick_parameters(find_chapter(CHAPTER))
    for method in list(fmlib.ode.SOLVERS):
        monkeypatch.setitem(fmlib.ode.SOLVERS, method, Solver(order=1, step=lambda v, x, t, t_next: x))
    with pytest.raises(ClaimBroken, match=r"^\[memorisation\] before the last step") as err:
        run_in_process(params)
    assert err.value.claim == "memorisation"
