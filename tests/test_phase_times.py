"""The change of time from the Ornstein-Uhlenbeck process to our path, and the predicted phase times."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlib.closed_form import ClosedFormField
from fmlib.path import snr_to_time
from fmlib.phase_times import (
    collapse_snr,
    collapse_time,
    covariance_top_eigenvalue,
    flow_to_ou_time,
    ou_collapse_time,
    ou_speciation_time,
    ou_to_flow_scale,
    ou_to_flow_time,
    speciation_snr,
    speciation_time,
)


def ou_log_weights(x, tau, data):
    """Posterior log-weights of the training points given x_tau = e^-tau a + sqrt(1 - e^-2tau) z; float64."""
    mean, var = math.exp(-tau), -math.expm1(-2 * tau)
    logits = -((x[:, None, :] - mean * data[None]) ** 2).sum(-1) / (2 * var)
    return torch.log_softmax(logits, dim=1)


def map_matches_ou_posterior(to_time, scale, tau, seed=0):
    """Max |difference| of the posterior log-weights under OU at tau and on our path at to_time(tau)."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(25, 6, generator=g, dtype=torch.float64)
    a = data[torch.randint(0, 25, (10,), generator=g)]
    x_tau = math.exp(-tau) * a + math.sqrt(-math.expm1(-2 * tau)) * torch.randn(10, 6, generator=g,
                                                                                 dtype=torch.float64)
    ours = ClosedFormField(data).log_weights(scale(tau) * x_tau, to_time(tau))
    return float((ours - ou_log_weights(x_tau, tau, data)).abs().max())


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 2.5])
def test_snr_matching_gives_the_same_posterior(tau):
    """x_t = t e^tau x_tau in law, so the posterior over training points is the same: the map is exact."""
    assert map_matches_ou_posterior(ou_to_flow_time, ou_to_flow_scale, tau) <= 1e-9


@pytest.mark.parametrize(
    "wrong_time",
    [
        lambda tau: math.exp(-tau),  # matching the signal coefficient only
        lambda tau: snr_to_time(math.exp(-tau) / -math.expm1(-2 * tau)),  # the noise variance for its std
        lambda tau: snr_to_time(1 / math.expm1(2 * tau)),  # the squared ratio
    ],
)
def test_wrong_snr_map_fails_the_posterior_check(wrong_time):
    """Mutation: any other map of the clocks gives other posterior weights (with the scale that goes with it)."""
    worst = max(
        map_matches_ou_posterior(wrong_time, lambda tau, f=wrong_time: f(tau) * math.exp(tau), tau)
        for tau in (0.3, 1.0)
    )
    assert worst > 1e-2


def test_time_maps_are_inverse_and_have_the_right_ends():
    tau = np.array([0.0, 1e-3, 0.5, 2.0, 10.0])
    t = ou_to_flow_time(tau)
    assert t[0] == 1.0 and np.all(np.diff(t) < 0) and t[-1] < 1e-4
    assert np.allclose(flow_to_ou_time(t[1:]), tau[1:], rtol=1e-10)
    assert ou_to_flow_time(np.inf) == 0.0
    scale = ou_to_flow_scale(tau)
    assert np.allclose(scale[1:-1], t[1:-1] * np.exp(tau[1:-1]), rtol=1e-12) and scale[0] == 1.0
    assert ou_to_flow_scale(np.inf) == 1.0


@pytest.mark.parametrize("n, d, sigma", [(1000, 10, 1.0), (50, 64, 0.5), (50_000, 3072, 2.0), (2, 1, 1.0)])
def test_collapse_time_is_the_mapped_ou_collapse_and_the_capacity_law(n, d, sigma):
    snr = math.sqrt(n ** (2 / d) - 1) / sigma  # chapter 3's capacity law with c = 1/sigma, alpha = 1/2
    assert collapse_snr(n, d, sigma) == pytest.approx(snr, rel=1e-12)
    assert collapse_time(n, d, sigma) == pytest.approx(snr / (1 + snr), rel=1e-12)
    assert collapse_time(n, d, sigma) == pytest.approx(ou_to_flow_time(ou_collapse_time(n, d, sigma)), rel=1e-10)


def test_collapse_time_known_value_and_trends():
    # n = 1000, d = 10: n^(2/d) = 3.981, s_C = sqrt(2.981) = 1.7266, t_C = 0.6332
    assert collapse_time(1000, 10) == pytest.approx(0.63323, abs=1e-5)
    d = np.array([4, 16, 64, 256])
    assert np.all(np.diff(collapse_time(1000, d)) < 0)  # later collapse in lower dimension
    assert np.all(np.diff(collapse_time(np.array([10, 100, 1000]), 16)) > 0)  # and with more data
    assert collapse_time(1000, 16, 2.0) < collapse_time(1000, 16, 1.0)  # spread data separate earlier


def test_speciation_time():
    assert speciation_snr(5.0) == pytest.approx(0.5)
    assert speciation_time(5.0) == pytest.approx(1 / 3)
    lam = np.array([1.5, 4.0, 100.0])
    assert np.allclose(speciation_time(lam), ou_to_flow_time(ou_speciation_time(lam)), rtol=1e-12)
    assert speciation_time(1.0) == 1.0 and speciation_time(0.5) == 1.0  # tau_S <= 0: no speciation before the end


def test_covariance_top_eigenvalue():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4000, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1, 1, 1, 1],
                                                                                   dtype=torch.float64)
    assert covariance_top_eigenvalue(data) == pytest.approx(9.0, rel=0.1)
    two_classes = torch.cat([torch.full((50, 3), 2.0), torch.full((50, 3), -2.0)])
    assert covariance_top_eigenvalue(two_classes) == pytest.approx(12.0)  # ||m||^2 = 3 x 4


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: collapse_time(1, 10), "n must lie"),
        (lambda: collapse_time(100, 0), "d must lie"),
        (lambda: collapse_time(100, 10, 0.0), "sigma must lie"),
        (lambda: ou_to_flow_time(-0.1), "tau must lie"),
        (lambda: flow_to_ou_time(0.0), "t must lie"),
        (lambda: speciation_time(0.0), "top_eigenvalue must lie"),
        (lambda: ou_to_flow_scale(float("nan")), "tau must lie"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
