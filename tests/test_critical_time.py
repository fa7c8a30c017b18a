"""fmlib.experiments.stochastic_target: the time grid, the crossing and its bootstrap, the alignment, the law fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.closed_form import ClosedFormField
from fmlib.experiments.stochastic_target import (
    CosineCurves,
    cosine_curves,
    critical_time,
    family_grid,
    fit_exponents,
    fit_law,
    initial_alignment,
    law_feature,
    measure_point,
    refine_grid,
)
from fmlib.metrics import cosine_to_target
from fmlib.path import draw_pairs, snr_grid, snr_to_time, time_to_snr
from fmlib.stats import crossing_time, crossing_times


def test_snr_and_time_are_inverse_and_the_grid_is_geometric_in_s():
    t = np.array([1e-6, 0.1, 0.5, 0.9, 0.9999])
    assert np.allclose(snr_to_time(time_to_snr(t)), t, rtol=1e-12)
    assert snr_to_time(math.inf) == 1.0 and time_to_snr(0.5) == pytest.approx(1.0)
    ts = snr_grid(1e-3, 1e4, 15)
    s = time_to_snr(ts)
    assert s[0] == pytest.approx(1e-3) and s[-1] == pytest.approx(1e4)
    assert np.allclose(np.diff(np.log(s)), math.log(10) / 2)
    with pytest.raises(ValueError, match="s_max"):
        snr_grid(1.0, 0.5)


def test_crossing_is_interpolated_in_log_snr():
    ts = snr_to_time(np.array([1.0, 100.0]))
    assert crossing_time(ts, [0.0, 1.0]) == pytest.approx(10 / 11)
    ts = snr_to_time(np.array([0.1, 1.0, 10.0, 100.0]))
    assert crossing_time(ts, [0.0, 0.2, 0.5, 1.0]) == pytest.approx(ts[2])  # reached exactly on the grid
    assert crossing_time(ts, [0.0, 0.25, 0.75, 1.0], level=0.5) == pytest.approx(snr_to_time(math.sqrt(10)))


def test_crossing_is_the_last_upward_one_and_censoring_is_flagged():
    ts = snr_to_time(np.geomspace(0.01, 100, 6))
    fraction = [0.8, 0.3, 0.6, 0.4, 0.9, 1.0]  # early alignment, a dip, a false start, then the rise
    t = crossing_time(ts, fraction)
    assert ts[3] < t < ts[4]
    assert crossing_time(ts, [0.6, 0.7, 0.8, 0.9, 1.0, 1.0]) == -math.inf
    assert crossing_time(ts, [0.0, 0.1, 0.6, 0.9, 0.7, 0.4]) == math.inf
    with pytest.raises(ValueError, match="strictly increasing"):
        crossing_time(ts[::-1], fraction)
    with pytest.raises(ValueError, match="shape"):
        crossing_time(ts, fraction[:-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=7, max_size=7), min_size=1,
                max_size=6))
def test_vectorised_crossings_match_the_scalar_definition(rows):
    ts = snr_grid(1e-2, 1e2, 7)
    fractions = np.array(rows)
    expected = [crossing_time(ts, row) for row in fractions]
    assert np.allclose(crossing_times(ts, fractions, 0.5), expected, equal_nan=False)


def step_curves(taus: np.ndarray, ts: np.ndarray) -> CosineCurves:
    """Pairs whose cosine jumps from 0 to 1 at their own time tau_b."""
    return CosineCurves(ts=ts, cosines=(ts[:, None] >= taus[None, :]).astype(np.float64))


def test_critical_time_is_the_median_crossing_with_a_bootstrap_interval():
    rng = np.random.default_rng(0)
    taus = snr_to_time(np.exp(rng.normal(0.0, 0.5, 400)))
    ts = snr_to_time(np.geomspace(0.05, 20, 200))
    crit = critical_time(step_curves(taus, ts), n_boot=400, seed=1)
    median = float(np.median(taus))
    assert crit.t_star == pytest.approx(median, abs=0.01)
    assert crit.low < crit.t_star < crit.high and crit.high - crit.low < 0.1
    assert crit.censored == "none" and crit.replicates.shape == (400,)
    assert crit.width == pytest.approx(np.quantile(taus, 0.9) - np.quantile(taus, 0.5), abs=0.02)
    late = critical_time(step_curves(np.full(10, 0.999), ts), n_boot=20)
    assert late.censored == "right" and late.high == math.inf and math.isnan(late.width)


def test_curves_are_the_metric_at_each_time_and_merge_sorted():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(30, 5, generator=g, dtype=torch.float64)
    x0, x1 = draw_pairs(data, 16, generator=g)
    field = ClosedFormField(data)
    curves = cosine_curves(field, x0, x1, [0.2, 0.7])
    assert curves.cosines.shape == (2, 16)
    assert np.allclose(curves.cosines[1], cosine_to_target(field, x0, x1, 0.7).numpy())
    merged = curves.merged(cosine_curves(field, x0, x1, [0.1, 0.7]))
    assert np.allclose(merged.ts, [0.1, 0.2, 0.7]) and merged.cosines.shape == (3, 16)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        cosine_curves(field, x0, x1, [0.5, 1.0])


def test_refinement_lands_inside_the_bracket_of_the_crossing():
    ts = snr_grid(1e-2, 1e2, 9)
    taus = np.full(8, ts[4] + 1e-3)
    extra = refine_grid(step_curves(taus, ts), 4)
    assert extra.size == 2 + 4 + 2 and np.all((extra > ts[3]) & (extra < ts[6]))
    assert refine_grid(step_curves(np.full(8, 0.9999), ts)).size == 0


def test_initial_alignment_matches_the_cosine_at_small_t_in_high_dimension():
    g = torch.Generator().manual_seed(3)
    d = 4000
    scale = torch.linspace(0.1, 1.0, 64, dtype=torch.float64)[:, None]  # contrasts from low to high
    data = 0.3 + scale * torch.randn(64, d, generator=g, dtype=torch.float64)
    x0 = torch.randn(64, d, generator=g, dtype=torch.float64)
    cos = cosine_to_target(ClosedFormField(data), x0, data, 1e-6)
    assert initial_alignment(data) == pytest.approx(float((cos > 0.9).double().mean()), abs=3 / 64)
    assert initial_alignment(torch.zeros(5, 3)) == 1.0
    assert initial_alignment(torch.randn(200, 2000, generator=g)) == 0.0


def test_law_features():
    assert law_feature("power", 100, 10) == pytest.approx(math.log(math.log(100) / 10))
    assert law_feature("capacity", 100, 2) == pytest.approx(math.log(100 - 1))
    assert law_feature("capacity", 1000, 1e5) == pytest.approx(math.log(2 * math.log(1000) / 1e5), rel=1e-3)
    with pytest.raises(ValueError, match="not one of"):
        law_feature("cubic", 10, 2)
    with pytest.raises(ValueError, match="n >= 2"):
        law_feature("power", 1, 2)


@pytest.mark.parametrize("law", ["power", "capacity"])
def test_fit_recovers_an_exact_law_and_its_intervals_cover_a_noisy_one(law):
    n = np.array([10, 100, 1000, 10000] * 3, dtype=float)
    d = np.repeat([16.0, 256.0, 4096.0], 4)
    log_s = math.log(1.3) + 0.5 * law_feature(law, n, d)
    t = snr_to_time(np.exp(log_s))
    exact = fit_law(law, n, d, t, n_boot=200)
    assert exact.c == pytest.approx(1.3) and exact.alpha == pytest.approx(0.5) and exact.rmse < 1e-10
    rng = np.random.default_rng(0)
    noisy = log_s + rng.normal(0, 0.05, log_s.shape)
    replicates = snr_to_time(np.exp(noisy[:, None] + rng.normal(0, 0.05, (log_s.size, 300))))
    t_noisy = np.append(snr_to_time(np.exp(noisy)), math.inf)  # a censored point is left out
    fit = fit_law(law, np.append(n, 10), np.append(d, 16), t_noisy, np.vstack([replicates, np.full(300, np.inf)]))
    assert fit.left_out == 1 and fit.residuals.shape == (12,)
    assert fit.alpha_interval[0] < 0.5 < fit.alpha_interval[1]
    assert fit.c_interval[0] < 1.3 < fit.c_interval[1]
    t_pred, low, high = fit.predict(50000, 3072)
    truth = snr_to_time(1.3 * math.exp(0.5 * law_feature(law, 50000, 3072)))
    assert low < t_pred < high and low < truth < high


def test_fit_needs_three_points():
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_law("power", [10, 100, 1000], [2, 2, 2], [0.5, 0.6, math.inf])


def test_measure_point_is_reproducible_and_its_crossing_sits_on_a_refined_grid():
    first = measure_point("gaussian", 16, 40, batch=32, ts=snr_grid(1e-2, 1e2, 7), refine=4, n_boot=50,
                          device="cpu")
    again = measure_point("gaussian", 16, 40, batch=32, ts=snr_grid(1e-2, 1e2, 7), refine=4, n_boot=50,
                          device="cpu")
    assert np.array_equal(first.curves.cosines, again.curves.cosines)
    assert first.critical.t_star == again.critical.t_star
    assert first.curves.ts.size == 7 + 2 + 4 + 2 and first.critical.censored == "none"
    assert first.d == 16 and first.variance == pytest.approx(1.0, abs=0.15) and first.initial_alignment == 0.0


def test_a_law_with_the_log_d_term_finds_no_dependence_beyond_the_feature_and_the_exponents_are_equal():
    n = np.array([10, 100, 1000, 10000] * 3, dtype=float)
    d = np.repeat([16.0, 256.0, 4096.0], 4)
    t = snr_to_time(0.7 * (np.log(n) / d) ** 0.5)
    fit = fit_law("power", n, d, t, with_log_d=True, n_boot=100)
    assert fit.gamma == pytest.approx(0.0, abs=1e-9) and fit.alpha == pytest.approx(0.5)
    assert fit.predict(1000, 256)[0] == pytest.approx(snr_to_time(0.7 * (math.log(1000) / 256) ** 0.5))
    assert np.allclose(fit.log_snr(n, d), np.log(t / (1 - t)))
    exps = fit_exponents(n, d, t, n_boot=100)
    assert exps.beta_n == pytest.approx(0.5) and exps.beta_d == pytest.approx(0.5) and exps.points == 12
    other = fit_exponents(n, d, snr_to_time(np.log(n) ** 0.2 * d**-0.6), n_boot=100)
    assert other.beta_n == pytest.approx(0.2) and other.beta_d == pytest.approx(0.6)
    with pytest.raises(ValueError, match="two distinct n and two distinct d"):
        fit_exponents([10, 100, 1000], [8, 8, 8], [0.2, 0.3, 0.4])


def test_family_grids():
    kw = {"dims": [8, 2], "resolutions": [1, 2], "sizes": [10, 5000]}
    assert family_grid("gaussian", **kw) == [(2, 10), (2, 5000), (8, 10), (8, 5000)]
    assert family_grid("image_patches", **kw, max_work=1000) == [(3, 10), (12, 10)]
    assert family_grid("digits", **kw) == [(64, 10), (64, 1797)]
    assert family_grid("two_moons", **kw) == [(2, 10), (2, 5000)]
