"""The chapter "When does the target stop being stochastic?" runs with its tiny parameters and reports its claims."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.book.report import VERDICTS
from fmlib.book.run import run_chapter

CHAPTER = "stochastic_target"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters(quick_run):
    run = quick_run(CHAPTER)
    results = run.results
    claims = results["claims"]
    assert set(claims) == {"cosine-high-d", "dimension-sweep", "collapse-time"}
    assert all(claim["verdict"] in VERDICTS for claim in claims.values())
    assert "stand in" in claims["cosine-high-d"]["number"] or "standing in" in claims["cosine-high-d"]["number"]
    assert claims["cosine-high-d"]["verdict"] != "reproduced", "without CIFAR-10 the proxy can only partly reproduce"

    assert 0.0 <= results["proxy_fraction_paper_time"] <= 1.0
    assert 0.0 < results["proxy_t_star_low"] <= results["proxy_t_star"] <= results["proxy_t_star_high"] < 1.0
    assert results["moons_t_star"] > results["proxy_t_star"], "2-D data must stay stochastic longer than d = 3072"
    assert math.isfinite(results["gaussian_capacity_alpha"]) and results["gaussian_capacity_c"] > 0

    points = pd.read_csv(run.path / "tables" / "table_points.csv")
    assert set(points["family"]) == {"gaussian", "image_patches", "digits", "two_moons"}
    assert set(points["censored"]) <= {"none", "left", "right"}
    finite = points[points["censored"] == "none"]
    assert ((finite["95% low"] <= finite["t*"]) & (finite["t*"] <= finite["95% high"])).all()
    for figure in ("fig_histograms", "fig_fraction", "fig_laws"):
        assert (run.path / "figures" / f"{figure}.png").exists()


@pytest.mark.slow
def test_chapter_uses_cifar10_files_when_given(results_store, tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:  # the official layout, 60 images each
        pixels = np.clip(rng.integers(40, 215, (60, 3, 1, 1)) + rng.normal(0, 40, (60, 3, 32, 32)), 0, 255)
        with (root / name).open("wb") as file:
            pickle.dump({b"data": pixels.astype(np.uint8).reshape(60, 3072), b"labels": [0] * 60}, file)
    params = {**quick_parameters(find_chapter(CHAPTER)), "cifar10_dir": str(root), "proxy_n": 100}
    run = run_chapter(CHAPTER, params, progress=False)
    claim = run.results["claims"]["cosine-high-d"]
    assert claim["number"].startswith("CIFAR-10, n = 100")
    assert claim["verdict"] != "reproduced", "100 images cannot reproduce a claim about 50,000"
    assert "**CIFAR-10 itself** (`cifar10_dir` given, n = 100)" in run.notebook.read_text()
