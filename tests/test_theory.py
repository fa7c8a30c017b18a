"""Tests of fmlib.theory: the exact law of the log-weight ratio and the concentration bounds.

The Monte-Carlo references draw x = t y_k + (1 - t) z on the conditional path of y_k and read the
weights from ``fmlib.closed_form.ClosedFormField`` in float64, so they share no code with the
formulas under test. A Monte-Carlo estimate agrees with an exact value when it is within 4
standard errors (seeds are fixed, so the tests are deterministic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import norm
from torch import Tensor

from fmlib.closed_form import ClosedFormField
from fmlib.theory import (
    NormalLaw,
    concentration_bound,
    concentration_time,
    gaussian_tail_bound,
    log_weight_ratio_law,
    not_concentrated_bound,
    outweigh_probability,
)

N_DRAWS = 20_000
Z_MAX = 4.0


def path_log_weights(data: Tensor, k: int, t: float, n_draws: int = N_DRAWS, seed: int = 0) -> Tensor:
    """log lambda_i(x, t), (n_draws, N), for x = t y_k + (1 - t) z on the conditional path of y_k."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n_draws, data.shape[1], generator=generator, dtype=torch.float64)
    return ClosedFormField(data).log_weights(t * data[k] + (1 - t) * z, t)


def outweighed(log_w: Tensor, k: int, eps: float) -> Tensor:
    """(n_draws,) bool: some j != k has lambda_j >= eps lambda_k."""
    others = torch.cat([log_w[:, :k], log_w[:, k + 1 :]], dim=1)
    return (others >= log_w[:, k : k + 1] + math.log(eps)).any(dim=1)


def binomial_se(p: float, n: int) -> float:
    """Standard error of a frequency over n draws with success probability p."""
    return math.sqrt(p * (1 - p) / n)


def pair_at_distance(distance: float, d: int, seed: int = 1) -> Tensor:
    """Three points in d dimensions, float64: y_0, y_1 = y_0 + distance * (unit vector), y_2 far off."""
    generator = torch.Generator().manual_seed(seed)
    y0 = torch.randn(d, generator=generator, dtype=torch.float64)
    direction = torch.randn(d, generator=generator, dtype=torch.float64)
    y2 = 5 * torch.randn(d, generator=generator, dtype=torch.float64)
    return torch.stack([y0, y0 + distance * direction / direction.norm(), y2])


def regular_simplex(n_points: int, separation: float, d: int) -> Tensor:
    """N points e_i * separation / sqrt(2) in d >= N dimensions: every pairwise distance is ``separation``."""
    return torch.eye(n_points, d, dtype=torch.float64) * (separation / math.sqrt(2))


def odds(t: float | np.ndarray) -> float | np.ndarray:
    return t / (1 - t)


# --- the exact law against Monte Carlo -------------------------------------------------------


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("distance", [0.5, 3.0])
def test_log_ratio_law_matches_monte_carlo(t: float, distance: float) -> None:
    data = pair_at_distance(distance, d=20)
    log_w = path_log_weights(data, k=0, t=t)
    ratio = (log_w[:, 0] - log_w[:, 1]).numpy()
    mean, std = log_weight_ratio_law(t, distance)
    assert abs(ratio.mean() - mean) <= Z_MAX * std / math.sqrt(N_DRAWS)
    assert abs(ratio.std(ddof=1) - std) <= Z_MAX * std / math.sqrt(2 * N_DRAWS)


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("distance", [0.5, 3.0])
@pytest.mark.parametrize("eps", [1.0, 0.3])
def test_outweigh_probability_matches_monte_carlo(t: float, distance: float, eps: float) -> None:
    data = pair_at_distance(distance, d=20)
    log_w = path_log_weights(data, k=0, t=t)
    frequency = float((log_w[:, 1] >= log_w[:, 0] + math.log(eps)).double().mean())
    exact = outweigh_probability(t, distance, eps=eps)
    assert abs(frequency - exact) <= Z_MAX * binomial_se(exact, N_DRAWS) + 1 / N_DRAWS


def test_note_numbers_reproduce() -> None:
    """shared/notes/gao_li_2410.23594.md: N = 4, d = 20, t = 0.5, eps = 0.3, k = 0.

    The note's data are reproduced by numpy's default_rng(2) standard normals (found by matching
    the quoted exact values); its Monte-Carlo values used 2e5 draws.
    """
    data = np.random.default_rng(2).standard_normal((4, 20))
    distances = np.linalg.norm(data[0] - data[1:], axis=1)
    exact = outweigh_probability(0.5, distances, eps=0.3)
    np.testing.assert_allclose(exact, [0.00095, 0.00450, 0.00188], atol=5e-6)
    note_monte_carlo = np.array([0.00103, 0.00472, 0.00203])
    assert np.all(np.abs(note_monte_carlo - exact) <= Z_MAX * np.sqrt(exact * (1 - exact) / 200_000))
    log_w = path_log_weights(torch.from_numpy(data), k=0, t=0.5, n_draws=200_000)
    frequency = (log_w[:, 1:] >= log_w[:, :1] + math.log(0.3)).double().mean(dim=0).numpy()
    assert np.all(np.abs(frequency - exact) <= Z_MAX * np.sqrt(exact * (1 - exact) / 200_000))


@pytest.mark.parametrize("eps", [1.0, 0.5])
def test_dimension_independence(eps: float) -> None:
    """Same separation, d = 2 and d = 50: the Monte-Carlo probabilities agree (and match the law)."""
    t, separation = 0.4, 2.0
    exact = outweigh_probability(t, separation, eps=eps)
    frequencies = []
    for d in (2, 50):
        data = regular_simplex(2, separation, d)
        frequencies.append(float(outweighed(path_log_weights(data, 0, t, seed=d), 0, eps).double().mean()))
    se = binomial_se(exact, N_DRAWS)
    assert abs(frequencies[0] - frequencies[1]) <= Z_MAX * math.sqrt(2) * se
    assert all(abs(f - exact) <= Z_MAX * se for f in frequencies)


# --- the bounds against Monte Carlo ----------------------------------------------------------


def assert_below(frequency: float, bound: float, n: int = N_DRAWS) -> None:
    """frequency <= bound up to Monte-Carlo error (the largest standard error a p <= bound can have)."""
    p = min(bound, 0.5)
    assert frequency <= bound + Z_MAX * binomial_se(p, n) + 1 / n, (frequency, bound)


@pytest.mark.parametrize("n_points", [3, 8])
@pytest.mark.parametrize("separation", [1.0, 2.5])
@pytest.mark.parametrize("t", [0.3, 0.5, 0.7])
def test_union_bound_holds_on_simplex(n_points: int, separation: float, t: float) -> None:
    data = regular_simplex(n_points, separation, d=n_points + 2)
    log_w = path_log_weights(data, k=1, t=t)
    for eps in (1.0, 0.3):
        frequency = float(outweighed(log_w, 1, eps).double().mean())
        assert_below(frequency, concentration_bound(t, separation, n_points, eps=eps))
    for eta in (0.1, 0.5, 0.95):
        frequency = float((log_w[:, 1] < math.log1p(-eta)).double().mean())
        assert_below(frequency, not_concentrated_bound(t, separation, n_points, eta=eta))


def test_not_concentrated_bound_large_eta_is_tight_at_worst_distance() -> None:
    """For eta > 1 - 1/N (eps > 1) the per-pair probability is not monotone in the distance.

    N = 2, eta = 0.9 (eps = 9), t = 0.5: a second point at the worst distance sqrt(2 log 9) makes
    P[lambda_1 < 0.1] = Phi(-sqrt(2 log 9)) ~ 0.018; the naive plug-in of a smaller separation
    (0.5) would claim ~1.7e-6. The bound (a supremum over distances >= separation) is attained.
    """
    t, eta, separation = 0.5, 0.9, 0.5
    log_eps = math.log(eta / (1 - eta))
    worst = math.sqrt(2 * log_eps) / odds(t)
    data = regular_simplex(2, worst, d=3)
    frequency = float((path_log_weights(data, 0, t)[:, 0] < math.log1p(-eta)).double().mean())
    bound = not_concentrated_bound(t, separation, 2, eta=eta)
    assert bound == pytest.approx(norm.cdf(-math.sqrt(2 * log_eps)), rel=1e-12)
    assert abs(frequency - bound) <= Z_MAX * binomial_se(bound, N_DRAWS)
    naive = norm.cdf(-log_eps / (odds(t) * separation) - odds(t) * separation / 2)
    assert frequency > naive + Z_MAX * binomial_se(naive, N_DRAWS)


def test_bound_dominates_exact_pair_probabilities() -> None:
    """On random data, the bound at the minimum separation >= the sum (and max) of the exact pair terms."""
    data = np.random.default_rng(0).standard_normal((6, 10))
    gaps = np.linalg.norm(data[:, None] - data[None], axis=-1)
    separation = gaps[~np.eye(6, dtype=bool)].min()
    t = np.linspace(0.0, 1.0, 41)[:, None]
    for eps in (1.0, 0.5, 0.05):
        bound = concentration_bound(t[:, 0], separation, 6, eps=eps)
        for k in range(6):
            pair = outweigh_probability(t, np.delete(gaps[k], k)[None, :], eps=eps)
            assert np.all(bound >= pair.max(axis=1) - 1e-15)
            assert np.all(bound >= np.minimum(1.0, pair.sum(axis=1)) - 1e-15)


# --- closed forms against scipy.stats.norm -------------------------------------------------


T_GRID = np.array([0.05, 0.2, 0.5, 0.8, 0.95])


@pytest.mark.parametrize("distance", [0.1, 1.0, 4.0])
@pytest.mark.parametrize("eps", [1.0, 0.5, 1e-3])
def test_formulas_match_scipy(distance: float, eps: float) -> None:
    s = odds(T_GRID)
    law = log_weight_ratio_law(T_GRID, distance)
    np.testing.assert_allclose(law.mean, s**2 * distance**2 / 2, rtol=1e-14)
    np.testing.assert_allclose(law.std, s * distance, rtol=1e-14)
    reference = norm.cdf(math.log(1 / eps), loc=law.mean, scale=law.std)
    np.testing.assert_allclose(outweigh_probability(T_GRID, distance, eps=eps), reference, rtol=1e-10, atol=1e-300)
    for n_points in (1, 2, 5, 100):
        expected = np.minimum(1.0, (n_points - 1) * reference)
        np.testing.assert_allclose(concentration_bound(T_GRID, distance, n_points, eps=eps), expected, rtol=1e-10)
    tail = np.minimum(1.0, 4 / 2 * np.exp(-(s**2) * distance**2 / 8))
    np.testing.assert_allclose(gaussian_tail_bound(T_GRID, distance, 5), tail, rtol=1e-12)


@pytest.mark.parametrize("n_points", [2, 4, 50])
@pytest.mark.parametrize("eta", [0.01, 0.2, 0.45])
def test_not_concentrated_bound_is_concentration_bound_at_its_eps(n_points: int, eta: float) -> None:
    eps = eta / ((n_points - 1) * (1 - eta))
    expected = concentration_bound(T_GRID, 1.5, n_points, eps=eps)
    np.testing.assert_allclose(not_concentrated_bound(T_GRID, 1.5, n_points, eta=eta), expected, rtol=1e-12)


@pytest.mark.parametrize("n_points", [2, 4, 1000])
@pytest.mark.parametrize("separation", [0.3, 3.0])
@pytest.mark.parametrize("eps", [1.0, 0.3, 1e-4])
@pytest.mark.parametrize("level", [1e-6, 0.01, 0.3])
def test_concentration_time_solves_bound_equals_level(
    n_points: int, separation: float, eps: float, level: float
) -> None:
    t_star = concentration_time(separation, n_points, level=level, eps=eps)
    gap = lambda t: concentration_bound(t, separation, n_points, eps=eps) - level  # noqa: E731
    if gap(1e-12) <= 0:  # the bound is below level for every t > 0
        assert t_star == 0.0
        return
    assert t_star == pytest.approx(brentq(gap, 1e-12, 1.0, xtol=1e-15, rtol=1e-14), rel=1e-9)
    assert gap(t_star) == pytest.approx(0.0, abs=1e-9 * level)


def test_concentration_time_eps_one_closed_form() -> None:
    separation, n_points, level = 1.7, np.array([2, 10, 1000]), 0.01
    s = 2 * norm.ppf(1 - level / (n_points - 1)) / separation
    np.testing.assert_allclose(concentration_time(separation, n_points, level=level), s / (1 + s), rtol=1e-12)


# --- edge values, shapes, monotonicity -------------------------------------------------------


def test_edges_in_time() -> None:
    assert outweigh_probability(0.0, 2.0) == 1.0
    assert outweigh_probability(0.0, 2.0, eps=0.1) == 1.0
    assert outweigh_probability(1e-12, 2.0) == pytest.approx(0.5, abs=1e-9)  # the t -> 0+ limit at eps = 1
    assert outweigh_probability(1e-300, 2.0) == pytest.approx(0.5)  # s * D underflows
    assert outweigh_probability(1.0, 2.0, eps=0.1) == 0.0
    assert log_weight_ratio_law(0.0, 2.0) == (0.0, 0.0)
    assert log_weight_ratio_law(1.0, 2.0) == (math.inf, math.inf)
    assert concentration_bound(0.0, 2.0, 3) == 1.0
    assert concentration_bound(1.0, 2.0, 3) == 0.0
    assert gaussian_tail_bound(0.0, 2.0, 2) == 1.0
    assert gaussian_tail_bound(1.0, 2.0, 2) == 0.0
    # at t = 0 every weight is 1/N: lambda_k < 1 - eta exactly when 1/N < 1 - eta
    assert not_concentrated_bound(0.0, 2.0, 4, eta=0.5) == 1.0
    assert not_concentrated_bound(0.0, 2.0, 4, eta=0.9) == 0.0
    assert not_concentrated_bound(1.0, 2.0, 4, eta=0.5) == 0.0


def test_one_point_is_always_concentrated() -> None:
    t = np.linspace(0, 1, 5)
    assert np.all(concentration_bound(t, 1.0, 1) == 0.0)
    assert np.all(not_concentrated_bound(t, 1.0, 1, eta=0.3) == 0.0)
    assert np.all(gaussian_tail_bound(t, 1.0, 1) == 0.0)
    assert concentration_time(1.0, 1) == 0.0


def test_scalars_give_floats_and_arrays_broadcast() -> None:
    assert type(outweigh_probability(0.5, 1.0)) is float
    assert type(concentration_time(1.0, 3)) is float
    assert isinstance(log_weight_ratio_law(0.5, 1.0), NormalLaw)
    out = concentration_bound(np.linspace(0, 1, 7)[:, None], np.array([0.5, 1.0, 2.0]), 4)
    assert out.shape == (7, 3) and out.dtype == np.float64
    out = not_concentrated_bound(0.5, 1.0, np.array([[2], [5]]), eta=np.array([0.1, 0.5, 0.9]))
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert concentration_time(np.array([1.0, 2.0]), np.array([[3], [4]])).shape == (2, 2)


def non_increasing(values: np.ndarray) -> bool:
    return bool(np.all(np.diff(values) <= 1e-15))


def test_monotonicity() -> None:
    t = np.linspace(0, 1, 201)
    grid = np.geomspace(0.05, 20, 60)
    n = np.arange(1, 60)
    for eps in (1.0, 0.3):
        assert non_increasing(concentration_bound(t, 1.0, 5, eps=eps))
        assert non_increasing(concentration_bound(0.5, grid, 5, eps=eps))
        assert non_increasing(-concentration_bound(0.5, 1.0, n, eps=eps))
        assert non_increasing(concentration_time(grid, 5, eps=eps))
        assert non_increasing(-concentration_time(1.0, n, eps=eps))
        assert non_increasing(concentration_time(1.0, 5, level=np.geomspace(1e-9, 0.9, 50), eps=eps))
    eps_grid = np.geomspace(1e-6, 1, 60)
    assert non_increasing(concentration_bound(0.5, 1.0, 5, eps=eps_grid))
    assert non_increasing(concentration_time(1.0, 5, eps=eps_grid))
    for eta in (0.2, 0.9):  # 0.9 > 1 - 1/5: the eps > 1 branch, where t = 0 gives the exact 0
        assert non_increasing(not_concentrated_bound(t[1:], 1.0, 5, eta=eta))
        assert non_increasing(not_concentrated_bound(0.5, grid, 5, eta=eta))
        assert non_increasing(-not_concentrated_bound(0.5, 1.0, n, eta=eta))
    assert non_increasing(not_concentrated_bound(0.5, 1.0, 5, eta=np.linspace(0.01, 0.99, 99)))
    assert np.all(gaussian_tail_bound(t, 1.0, 5) >= concentration_bound(t, 1.0, 5))


# --- properties ------------------------------------------------------------------------------

times = st.floats(0.0, 1.0)
separations = st.floats(1e-3, 1e3)
counts = st.integers(1, 10_000)
epsilons = st.floats(0.0, 1.0, exclude_min=True)
open_unit = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)


def is_probability(value: float) -> bool:
    return 0.0 <= value <= 1.0  # False for NaN


@settings(max_examples=50, deadline=None)
@given(t=times, separation=separations, n_points=counts, eps=epsilons, eta=open_unit)
def test_bounds_are_probabilities(t: float, separation: float, n_points: int, eps: float, eta: float) -> None:
    with np.errstate(divide="raise", invalid="raise"):
        pair = outweigh_probability(t, separation, eps=eps)
        bound = concentration_bound(t, separation, n_points, eps=eps)
        loose = not_concentrated_bound(t, separation, n_points, eta=eta)
        tail = gaussian_tail_bound(t, separation, n_points)
        mean, std = log_weight_ratio_law(t, separation)
    assert all(is_probability(p) for p in (pair, bound, loose, tail))
    assert mean >= 0 and std >= 0
    assert bound >= min(1.0, (n_points - 1) * pair) - 1e-12
    if eta >= 1 - 1 / n_points:  # lambda_k < 1 - eta implies some lambda_j >= lambda_k
        assert loose <= concentration_bound(t, separation, n_points) + 1e-12


@settings(max_examples=50, deadline=None)
@given(separation=separations, n_points=counts, level=open_unit, eps=epsilons)
def test_concentration_time_is_a_time(separation: float, n_points: int, level: float, eps: float) -> None:
    with np.errstate(divide="raise", invalid="raise"):
        t_star = concentration_time(separation, n_points, level=level, eps=eps)
    assert 0.0 <= t_star <= 1.0
    if 0.0 < t_star < 1.0 - 1e-6:
        assert concentration_bound(t_star, separation, n_points, eps=eps) == pytest.approx(level, rel=1e-6)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: outweigh_probability(-0.1, 1.0), r"t must lie in \[0, 1\], got -0.1"),
        (lambda: outweigh_probability(np.array([0.5, 1.5]), 1.0), r"t must lie in \[0, 1\], got 1.5"),
        (lambda: log_weight_ratio_law(math.nan, 1.0), r"t must lie in \[0, 1\], got nan"),
        (lambda: outweigh_probability(0.5, 0.0), r"distance must be positive and finite \(> 0\), got 0.0"),
        (lambda: log_weight_ratio_law(0.5, math.inf), r"distance must be positive and finite \(> 0\), got inf"),
        (lambda: concentration_bound(0.5, -1.0, 3), r"separation must be positive and finite \(> 0\), got -1.0"),
        (lambda: outweigh_probability(0.5, 1.0, eps=0.0), r"eps must lie in \(0, 1\], got 0.0"),
        (lambda: concentration_bound(0.5, 1.0, 3, eps=1.5), r"eps must lie in \(0, 1\], got 1.5"),
        (lambda: concentration_bound(0.5, 1.0, 0), r"n_points must be an integer >= 1, got 0"),
        (lambda: gaussian_tail_bound(0.5, 1.0, 2.5), r"n_points must be an integer >= 1 .*got 2.5"),
        (lambda: concentration_time(1.0, True), r"n_points must be an integer >= 1 .*got True"),
        (lambda: not_concentrated_bound(0.5, 1.0, 3, eta=0.0), r"eta must lie in \(0, 1\), got 0.0"),
        (lambda: not_concentrated_bound(0.5, 1.0, 3, eta=1.0), r"eta must lie in \(0, 1\), got 1.0"),
        (lambda: concentration_time(1.0, 3, level=1.0), r"level must lie in \(0, 1\), got 1.0"),
        (lambda: concentration_time(1.0, 3, level=0.0), r"level must lie in \(0, 1\), got 0.0"),
        (lambda: concentration_time(0.0, 3), r"separation must be positive and finite \(> 0\), got 0.0"),
        (lambda: concentration_time(1.0, 3, eps=2.0), r"eps must lie in \(0, 1\], got 2.0"),
    ],
)
def test_invalid_arguments(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
