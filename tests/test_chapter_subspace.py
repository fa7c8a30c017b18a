"""The subspace chapter runs end to end with its tiny front-matter parameters and reports its four claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.book.params import ParameterError
from fmlib.book.run import run_chapter
from tests.conftest import findings

CHAPTER = "subspace"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    assert quick_parameters(find_chapter(CHAPTER)), "the chapter must declare tiny test parameters in its front matter"
    run = quick_run(CHAPTER)
    results = run.results
    claims = findings(run, {"span-ode-law", "off-subspace-decay", "osdnet", "teacher-student-bound"})
    assert claims["span-ode-law"]["verdict"] == "reproduced"
    assert results["law_worst"] < 1e-10
    assert results["digits_centred_rank"] < 64 and results["digits_rank"] <= results["digits_centred_rank"] + 1
    assert results["L_cert"] >= results["L_est"] > 0, "the certified constant bounds the Jacobian estimate"
    assert results["ts_distance"] <= results["ts_bound"]
    assert results["ts_count"] == 16 and isinstance(results["ts_count"], int), "a count reads '16', not '16.0'"
    grid = pd.read_csv(run.path / "tables" / "grid_table.csv")
    assert set(grid["net"]) == {"MLP", "OSDNet"} and np.isfinite(grid["off-span at t=1"]).all()
    law = pd.read_csv(run.path / "tables" / "law_table.csv")
    assert set(law["solver"]) == {"euler", "heun", "rk4"} and set(law["data"]) == {"subspace", "digits"}
    for name in ("fig_off_span", "fig_coefficient", "fig_teacher_student"):
        assert (run.path / "figures" / f"{name}.png").exists(), name


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ({"k": 40}, "k = 40 must be at most d = 16"),
    ({"k": 6, "mlp_dims": [4]}, "k = 6 must be at most mlp_dims = 4"),  # a dimension of the sweep below k
])
def test_chapter_refuses_a_subspace_larger_than_the_space(results_store, override, message):
    params = {**quick_parameters(find_chapter(CHAPTER)), **override}
    with pytest.raises(ParameterError, match=message):  # before anything runs
        run_chapter(CHAPTER, params, progress=False)
    assert not results_store.exists() or not any(results_store.rglob("run.json"))
