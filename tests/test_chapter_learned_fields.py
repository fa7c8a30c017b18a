"""Chapter "Trained networks: when does a learned field stop memorising?" runs with tiny parameters."""

from __future__ import annotations

import pandas as pd
import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.book.run import run_chapter
from tests.conftest import findings

CHAPTER = "learned_fields"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    run = quick_run(CHAPTER)
    results = run.results
    claims = findings(run, {"efm-unbiased", "efm-fid", "capacity", "hybrid-tau"})
    assert results["enum_bias"] < 1e-9 < 0.1 < results["enum_bias_uniform"]
    assert results["enum_variance"] < results["enum_cfm_variance"]
    assert (results["enum_n"], results["enum_d"], results["enum_m"], results["enum_t"]) == (6, 3, 3, 0.4)
    assert "no sample is a copy" in results["capacity_copying"] or "copies at every n" in results["capacity_copying"]
    assert "MMD standing in for FID" in claims["efm-fid"]["number"]
    assert claims["efm-fid"]["verdict"] != "reproduced", "without FID features the claim can only partly reproduce"
    assert results["hybrid_tau"] != "not measured" and "largest weight along u*" in results["hybrid_summary"]
    assert "bracketed" in claims["capacity"]["number"] and "bracketed" in results["capacity_bracket"]
    assert "the noises themselves" in claims["hybrid-tau"]["number"]  # the floor of the hybrid test is measured
    assert results["hybrid_noise_ratio"] > 0 and results["hybrid_alone_ratio"] > 0

    efm = pd.read_csv(run.path / "tables" / "table_efm_cfm.csv")
    assert list(efm["loss"]) == ["CFM", "EFM, M = 4"]
    assert ((efm["copy fraction"] >= 0) & (efm["copy fraction"] <= 1)).all()
    capacity = pd.read_csv(run.path / "tables" / "table_capacity.csv")
    assert list(capacity["n"]) == [10, 30] and (capacity["steps"] == 60).all()
    for figure in ("fig_efm_variance", "fig_capacity", "fig_hybrid"):
        assert (run.path / "figures" / f"{figure}.png").exists()


@pytest.mark.slow
def test_second_run_loads_the_stored_networks(results_store):
    """The networks of a run are stored once; a rerun with other sampling loads them, retrains none.

    In a private store (the session's store is shared with chapters 5 to 7, which train too).
    """
    params = quick_parameters(find_chapter(CHAPTER))
    run_chapter(CHAPTER, params, progress=False)
    stored = {path: path.stat().st_mtime_ns for path in (results_store / "checkpoints").glob("*/model.pt")}
    assert len(stored) == 5  # 2 halves x M in {1, 4} at n = 30, and n = 10; n = 30 CFM is shared by all sections
    run_chapter(CHAPTER, {**params, "n_noises": 16}, progress=False)
    assert {path: path.stat().st_mtime_ns for path in (results_store / "checkpoints").glob("*/model.pt")} == stored
