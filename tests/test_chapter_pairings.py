"""The chapter "Pairings, gradient variance and noise" runs with its tiny parameters and reports its claims."""

from __future__ import annotations

import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from tests.conftest import findings

CHAPTER = "pairings"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    assert quick_parameters(find_chapter(CHAPTER)), "the chapter must declare tiny test parameters in its front matter"
    run = quick_run(CHAPTER)
    results = run.results
    claims = findings(run, {"pairing-zero-variance", "rotation-example", "noise-generalises"})
    # the identity held (else the run would have stopped) and the zero singles out the pairing's field
    assert claims["pairing-zero-variance"]["verdict"] == "reproduced"
    # the rule's 'positive' (1e-6): an interpolant whose noise was dropped leaves a trace of about 1e-31
    assert results["noisy_trace_min"] > 1e-6 and results["bridge_trace_min"] > 1e-6
    assert 0.5 < results["noisy_loss_ratio_max"] < 2.0
    # the exact pair field: an odd Euler grid reproduces the pairs, a node at 1/2 divides by zero
    assert results["exact_odd_error"] < 1e-10
    assert "euler-10" in results["exact_nonfinite"]
    # the noisy optimum ends at the OT image (proposition prop-bounce), for its adaptive solve
    assert results["noisy_to_ot"] < 1e-3
    for key in ("turned_sigma0", "turned_noisy", "gaussian_pair_0", "digits_pair_noisy"):
        assert 0.0 <= results[key] <= 1.0, key  # a format check only: fractions, not counts or distances
    assert (run.path / "figures" / "fig_rotation.png").exists()
    for name in ("variance_table", "solver_table", "shuffled_table", "mixture_table"):
        assert (run.path / "tables" / f"{name}.csv").exists(), name
