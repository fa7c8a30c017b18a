"""The chapter "Closed-form fields that generalise" runs with its tiny parameters and reports its claims."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from tests.conftest import findings

CHAPTER = "generalising_fields"
CLAIMS = {"smoothing-creates", "patch-creates", "collapse-prediction", "speciation-prediction"}


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    assert quick_parameters(find_chapter(CHAPTER)), "the chapter must declare tiny test parameters in its front matter"
    run = quick_run(CHAPTER)
    results = run.results
    findings(run, CLAIMS)

    # the exact field copies every sample and its two halves differ; the held-out images look new
    assert results["exact_copy"] == 1.0 and results["exact_ratio"] < 1e-3 and results["exact_halves"] > 0.3
    assert results["heldout_copy"] <= 0.2 and 0.5 <= results["heldout_ratio"] <= 2.0
    assert results["linear_copy"] == 0.0
    assert results["whole_shown"] == 15

    fields = pd.read_csv(run.path / "tables" / "table_fields.csv")
    assert list(fields["field"])[:4] == ["exact", "smoothed, sigma 1", "patch 5x5", "linear"]
    # true of any binomial interval: this only catches swapped or misaligned table columns
    assert ((fields["95% low"] <= fields["copy fraction"]) & (fields["copy fraction"] <= fields["95% high"])).all()

    collapse = pd.read_csv(run.path / "tables" / "table_collapse.csv")
    assert set(collapse["data"]) == {"gaussian", "digits", "image_patches"}
    gaussian = collapse[(collapse["data"] == "gaussian") & (collapse["d"] >= 32)]
    assert len(gaussian) and gaussian["ratio"].between(0.5, 2.0).all(), "the no-constant prediction must be close"
    speciation = pd.read_csv(run.path / "tables" / "table_speciation.csv")
    assert len(speciation) == 2 and results["speciation_inside"] >= 1
    assert " to " in results["digits_range"] or results["digits_range"][0].isdigit()
    assert results["sigma_stops"] != "0", "at sigma 0 the smoothed field is the exact one, which copies"
    assert math.isfinite(results["linear_r2_first"]) and results["exact_r2_last"] <= 1.0  # 50 steps: any value
    for figure in ("fig_samples", "fig_sweep", "fig_agreement", "fig_prediction"):
        assert (run.path / "figures" / f"{figure}.png").exists()
