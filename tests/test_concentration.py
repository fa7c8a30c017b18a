"""Tests of fmlib.experiments.concentration (Monte Carlo on conditional paths), fmlib.stats and the exact simplex law.

References share no code with what they test: weights from explicit differences and
``scipy.special.logsumexp`` in float64, binomial tails from ``scipy.stats.binom``, multivariate normal
probabilities from ``scipy.stats.multivariate_normal``. Monte-Carlo comparisons use exact binomial
tests at level 1e-4 with fixed seeds, so the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp, owens_t

from fmlib.data import make_dataset
from fmlib.experiments.concentration import PathDraws, draw_on_paths, exact_pair_averages, pair_law_check
from fmlib.stats import binomial_limits, binomial_pvalue, crossing_time, standard_error
from fmlib.theory import concentration_bound, outweigh_probability, simplex_outweigh_probability

LEVEL = 1e-4


def simplex(n: int, d: int, delta: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return make_dataset("simplex", n, d=d, separation=delta, generator=generator, device="cpu", dtype=torch.float64)


def brute_log_weights(data: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """log lambda_i(x, t) from explicit differences (B, N), float64."""
    logits = -((x[:, None, :] - t * data[None]) ** 2).sum(-1) / (2 * (1 - t) ** 2)
    return logits - logsumexp(logits, axis=1, keepdims=True)


# --- draw_on_paths ---------------------------------------------------------------------------


def test_draws_match_brute_force_weights_in_the_documented_random_order():
    generator = torch.Generator().manual_seed(3)
    data = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    times = [0.0, 0.3, 0.8]
    draws = draw_on_paths(data, times, 50, generator=torch.Generator().manual_seed(11))
    replay = torch.Generator().manual_seed(11)  # k, then j, then z (one chunk here)
    k = torch.randint(7, (50,), generator=replay)
    j = (k + torch.randint(1, 7, (50,), generator=replay)) % 7
    z = torch.randn(50, 5, generator=replay, dtype=torch.float64)
    assert torch.equal(draws.index, k) and torch.equal(draws.partner, j)
    assert bool((draws.partner != draws.index).all())
    y = data.numpy()
    for step, t in enumerate(times):
        x = t * y[k.numpy()] + (1 - t) * z.numpy()
        log_w = brute_log_weights(y, x, t)
        rows = np.arange(50)
        own = log_w[rows, k.numpy()]
        others = log_w.copy()
        others[rows, k.numpy()] = -np.inf
        np.testing.assert_allclose(draws.log_weight[step].numpy(), own, atol=1e-10)
        np.testing.assert_allclose(draws.log_gap[step].numpy(), others.max(1) - own, atol=1e-10)
        np.testing.assert_allclose(draws.log_ratio[step].numpy(), own - log_w[rows, j.numpy()], atol=1e-10)
    np.testing.assert_allclose(draws.partner_distance.numpy(), np.linalg.norm(y[k] - y[j], axis=1), rtol=1e-12)


def test_draws_are_float64_cpu_with_documented_shapes_and_z_is_drawn_chunk_by_chunk():
    data = simplex(4, 6, 1.0).to(torch.float32)
    one = draw_on_paths(data, [0.1, 0.5], 33, generator=torch.Generator().manual_seed(0))
    assert isinstance(one, PathDraws) and one.n_draws == 33
    assert one.log_weight.shape == (2, 33) and one.log_weight.dtype == torch.float64
    assert one.index.dtype == torch.int64 and one.log_gap.device.type == "cpu"
    # chunks of 5 draws (chunk_elements // max(N, d) = 30 // 6): k and j first, then z chunk by chunk
    chunked = draw_on_paths(data, [0.5], 33, generator=torch.Generator().manual_seed(0), chunk_elements=30)
    replay = torch.Generator().manual_seed(0)
    k = torch.randint(4, (33,), generator=replay)
    torch.randint(1, 4, (33,), generator=replay)
    z = torch.cat([torch.randn(min(5, 33 - start), 6, generator=replay, dtype=torch.float64)
                   for start in range(0, 33, 5)])
    x = 0.5 * data.double().numpy()[k.numpy()] + 0.5 * z.numpy()
    log_w = brute_log_weights(data.double().numpy(), x, 0.5)
    np.testing.assert_allclose(chunked.log_weight[0].numpy(), log_w[np.arange(33), k.numpy()], atol=1e-5)


def test_events_at_the_ends_of_the_path():
    data = simplex(5, 8, 3.0)
    draws = draw_on_paths(data, [0.0, 0.999], 200, generator=torch.Generator().manual_seed(1))
    assert bool(draws.outweighed()[0].all()), "at t = 0 all weights are equal: the event is sure"
    assert bool(draws.short_of_one(0.1)[0].all())
    assert not bool(draws.outweighed()[1].any()) and not bool(draws.short_of_one(0.1)[1].any())
    assert torch.isnan(draws.standardised_ratio()[0]).all()


def test_standardised_ratio_is_the_same_at_every_time_and_standard_normal():
    data = make_dataset("gaussian", 20, d=30, generator=torch.Generator().manual_seed(2), device="cpu",
                        dtype=torch.float64)
    draws = draw_on_paths(data, [0.05, 0.4, 0.9, 0.99], 4000, generator=torch.Generator().manual_seed(5))
    w = draws.standardised_ratio()
    assert float((w.max(0).values - w.min(0).values).max()) < 1e-9
    assert stats.kstest(w[1].numpy(), "norm").pvalue > LEVEL


@pytest.mark.parametrize("n", [2, 5, 40])
@pytest.mark.parametrize("t", [0.3, 0.7])
def test_frequency_matches_the_exact_simplex_probability(n, t):
    data = simplex(n, n + 3, 1.5)
    draws = draw_on_paths(data, [t], 20_000, generator=torch.Generator().manual_seed(n))
    count = int(draws.outweighed().sum())
    assert binomial_pvalue(count, 20_000, simplex_outweigh_probability(t, 1.5, n)) > LEVEL


def test_bad_arguments_are_refused():
    data = simplex(3, 3, 1.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        draw_on_paths(data[:1], [0.5], 10)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        draw_on_paths(data, [0.5, 1.0], 10)
    with pytest.raises(ValueError, match="n_draws"):
        draw_on_paths(data, [0.5], 0)
    draws = draw_on_paths(data, [0.5], 10)
    with pytest.raises(ValueError, match="eps"):
        draws.outweighed(1.5)
    with pytest.raises(ValueError, match="eta"):
        draws.short_of_one(1.0)


# --- exact pair averages, pair law --------------------------------------------------------------


def test_pair_averages_on_a_simplex_are_the_bound_and_the_pair_probability():
    times = np.array([0.0, 0.2, 0.6, 0.95])
    averages = exact_pair_averages(simplex(6, 9, 2.0), times, eps=0.3)
    np.testing.assert_allclose(averages.union, concentration_bound(times, 2.0, 6, eps=0.3), rtol=1e-9)
    np.testing.assert_allclose(averages.mean, outweigh_probability(times, 2.0, eps=0.3), rtol=1e-9)


def test_pair_averages_against_a_double_loop_and_below_the_separation_bound():
    data = make_dataset("gaussian", 9, d=3, generator=torch.Generator().manual_seed(4), device="cpu",
                        dtype=torch.float64)
    times = np.array([0.1, 0.5, 0.8])
    averages = exact_pair_averages(data, times, chunk_elements=20)  # blocks of 2 rows
    y = data.numpy()
    for step, t in enumerate(times):
        per_point = [sum(outweigh_probability(t, np.linalg.norm(y[k] - y[j])) for j in range(9) if j != k)
                     for k in range(9)]
        assert averages.mean[step] == pytest.approx(sum(per_point) / 72, rel=1e-12)
        assert averages.union[step] == pytest.approx(np.mean(np.minimum(1, per_point)), rel=1e-12)
    delta = min(np.linalg.norm(y[i] - y[j]) for i in range(9) for j in range(i))
    assert np.all(averages.union <= concentration_bound(times, delta, 9) + 1e-15)


def test_pair_averages_refuse_duplicate_points():
    data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="two equal points"):
        exact_pair_averages(data, [0.5])


def test_pair_law_check_accepts_the_closed_form_and_catches_a_wrong_law():
    data = make_dataset("digits", 100, generator=torch.Generator().manual_seed(0), device="cpu",
                        dtype=torch.float64)
    times = [0.0, 0.3, 0.6]
    draws = draw_on_paths(data, times, 3000, generator=torch.Generator().manual_seed(9))
    check = pair_law_check(draws, data, eps=(1.0, 0.1))
    assert np.isnan(check.mean_z[0]) and check.observed.shape == (3, 2) and check.union.shape == (3, 2)
    assert check.pathwise_spread < 1e-9
    assert np.nanmin(check.ks_p) > LEVEL and np.nanmin(check.variance_p) > LEVEL
    assert np.nanmax(np.abs(check.mean_z)) < 4 and check.binomial_p.min() > LEVEL
    assert check.observed[0].tolist() == [3000, 3000] and check.expected[0].tolist() == [1.0, 1.0]
    # a field whose log-ratios were off by 10% would be caught
    wrong = PathDraws(**{**draws.__dict__, "log_ratio": 1.1 * draws.log_ratio})
    bad = pair_law_check(wrong, data)
    assert np.nanmin(bad.ks_p) < 1e-6 and bad.pathwise_spread > 0.1


# --- statistics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 4000), (2000, 4000)])
@pytest.mark.parametrize("alpha", [0.025, 1e-6])
def test_clopper_pearson_limits_solve_their_defining_equations(k, n, alpha):
    lower, upper = binomial_limits(k, n, alpha)
    if k == 0:
        assert lower == 0.0
    else:
        assert stats.binom.sf(k - 1, n, lower) == pytest.approx(alpha, rel=1e-6)
    if k == n:
        assert upper == 1.0
    else:
        assert stats.binom.cdf(k, n, upper) == pytest.approx(alpha, rel=1e-6)
    assert lower <= k / n <= upper


def test_clopper_pearson_limits_broadcast_and_refuse_bad_counts():
    lower, upper = binomial_limits(np.array([0, 5, 9]), 10, 0.05)
    assert lower.shape == upper.shape == (3,) and np.all(np.diff(lower) > 0)
    with pytest.raises(ValueError, match="successes"):
        binomial_limits(11, 10, 0.05)
    with pytest.raises(ValueError, match="integers"):
        binomial_limits(1.5, 10, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        binomial_limits(1, 10, 0.0)


def test_binomial_pvalue_is_the_doubled_smaller_tail():
    assert binomial_pvalue(3, 20, 0.1) == pytest.approx(min(1, 2 * min(stats.binom.cdf(3, 20, 0.1),
                                                                      stats.binom.sf(2, 20, 0.1))))
    assert binomial_pvalue(0, 50, 0.0) == 1.0 and binomial_pvalue(1, 50, 0.0) == 0.0
    assert binomial_pvalue(50, 50, 1.0) == 1.0
    assert binomial_pvalue(40, 100, 0.4) == 1.0
    assert binomial_pvalue(3, 20, 0.1, alternative="greater") == pytest.approx(stats.binom.sf(2, 20, 0.1))
    with pytest.raises(ValueError, match="alternative"):
        binomial_pvalue(3, 20, 0.1, alternative="less")


@pytest.mark.parametrize(("k", "alpha"), [(1, 1e-3), (7, 1e-6), (300, 1e-4)])
def test_one_sided_pvalue_and_clopper_pearson_lower_limit_are_dual(k, alpha):
    lower, _ = binomial_limits(k, 4000, alpha)
    assert binomial_pvalue(k, 4000, lower * 1.0001, alternative="greater") > alpha
    assert binomial_pvalue(k, 4000, lower * 0.9999, alternative="greater") < alpha
    assert standard_error(0.5, 100) == pytest.approx(0.05)


def test_falling_crossing_is_exact_for_a_power_law_in_the_odds():
    s = np.geomspace(0.1, 100, 12)
    times = s / (1 + s)
    values = np.minimum(1.0, 0.5 * s ** -1.5)
    s_star = (0.01 / 0.5) ** (-1 / 1.5)
    falling = {"falling": True, "log_values": True}
    assert crossing_time(times, values, 0.01, **falling) == pytest.approx(s_star / (1 + s_star), rel=1e-12)
    assert crossing_time(times, np.full(12, 0.5), 0.01, **falling) == np.inf  # never falls below: after the grid
    assert crossing_time(times, np.full(12, 0.001), 0.01, **falling) == -np.inf  # below from the start
    with pytest.raises(ValueError, match="increas"):
        crossing_time(times[::-1], values, 0.01, **falling)


# --- fmlib.theory.simplex_outweigh_probability (added with the concentration chapter) -----------


def test_simplex_probability_for_two_points_is_the_pair_probability():
    t = np.array([0.05, 0.3, 0.6, 0.9])
    np.testing.assert_allclose(simplex_outweigh_probability(t, 1.3, 2, eps=0.2), outweigh_probability(t, 1.3, eps=0.2),
                               rtol=1e-10)


def both_below(h: float) -> float:
    """P[G1 <= h, G2 <= h] for standard normals of correlation 1/2 (Owen's T function)."""
    return float(stats.norm.cdf(h) - 2 * owens_t(h, math.sqrt(1 / 3)))


@pytest.mark.parametrize("t", [0.2, 0.5, 0.7])
def test_simplex_probability_for_three_points_against_the_bivariate_normal(t):
    c = t / (1 - t) * 1.0 / 2  # eps = 1, delta = 1: outweighed when G <= -c
    none = stats.multivariate_normal.cdf(c * np.ones(2), mean=np.zeros(2), cov=[[1, 0.5], [0.5, 1]],
                                         abseps=1e-12, releps=1e-10)
    assert simplex_outweigh_probability(t, 1.0, 3) == pytest.approx(1 - none, rel=1e-7)
    assert simplex_outweigh_probability(t, 1.0, 3) == pytest.approx(2 * stats.norm.cdf(-c) - both_below(-c), rel=1e-9)


@pytest.mark.parametrize("n", [3, 10, 1000])
@pytest.mark.parametrize("u", [0.5, 3.0, 8.0, 12.0])
def test_simplex_probability_between_the_first_two_bonferroni_inequalities(n, u):
    t = u / (1 + u)  # delta = 1, s = u
    single = stats.norm.cdf(-u / 2)
    exact = simplex_outweigh_probability(t, 1.0, n)
    union = concentration_bound(t, 1.0, n)
    assert exact <= union * (1 + 1e-9)
    assert exact >= (n - 1) * single - math.comb(n - 1, 2) * both_below(-u / 2) - 1e-12 * union
    if u >= 12 and n <= 10:  # the tail: the union bound is tight (later for larger N)
        assert exact / ((n - 1) * single) > 0.99


def test_simplex_probability_far_in_the_tail_keeps_its_relative_accuracy():
    u = np.array([20.0, 40.0, 60.0])
    exact = simplex_outweigh_probability(u / (1 + u), 1.0, 7)
    union = 6 * stats.norm.cdf(-u / 2)
    assert np.all(exact > 0) and np.all(exact <= union * (1 + 1e-9)) and np.all(exact / union > 0.999)


def test_simplex_probability_limits_and_validation():
    assert simplex_outweigh_probability(0.0, 1.0, 5) == 1.0
    assert simplex_outweigh_probability(1.0, 1.0, 5) == 0.0
    assert simplex_outweigh_probability(0.5, 1.0, 1) == 0.0
    values = simplex_outweigh_probability(np.linspace(0.01, 0.99, 50), 1.0, 50)
    assert np.all(np.diff(values) <= 1e-15), "non-increasing in t"
    assert np.all(np.diff(simplex_outweigh_probability(0.5, 1.0, np.array([2, 5, 50, 500]))) > 0)
    with pytest.raises(ValueError, match="separation"):
        simplex_outweigh_probability(0.5, 0.0, 3)
    with pytest.raises(ValueError, match="n_points"):
        simplex_outweigh_probability(0.5, 1.0, 2.5)
