"""fmlib.gaussian against finite differences of the flow, brute-force Gaussian conditioning and Monte
Carlo; the zero-loss, zero-variance property of the pair-consistent field; mutation 'wrong sign in
the Gaussian field'; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from fmlib.couplings import (
    AffineMap,
    gaussian_ot_map,
    noise_scale,
    noisy_interpolant,
    plane_rotation,
    rotated_ot_map,
    rotation_shift_map,
)
from fmlib.gaussian import AffinePairField, AffinePairModel, IndependentGaussianField
from fmlib.gradients import flow_matching_loss, gradient_variance
from tests.problems import GaussianToGaussian, brute_force_conditional_mean

TIMES = [0.0, 0.1, 0.3, 0.45, 0.7, 0.9, 0.999]


def _spd(d: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)


def _maps(d: int) -> dict[str, AffineMap]:
    mean, cov = torch.linspace(-1, 2, d, dtype=torch.float64), _spd(d)
    return {
        "ot": gaussian_ot_map(mean, cov),
        "rotated": rotated_ot_map(mean, torch.eye(d, dtype=torch.float64) * 1.5, plane_rotation(d, 1.0)),
        "rotation-180": rotation_shift_map(d, 5.0),
    }


def flow_residual(field, x0: Tensor, times: list[float], h: float = 1e-5) -> float:
    """max over times of |d flow / dt - v(flow(t), t)|, the derivative by second-order finite differences
    (central; one-sided (-3 f(t) + 4 f(t + h) - f(t + 2h)) / 2h at t = 0)."""
    worst = 0.0
    for t in times:
        if t - h < 0:
            f0, f1, f2 = (field.flow(x0, t + k * h) for k in range(3))
            derivative = (-3 * f0 + 4 * f1 - f2) / (2 * h)
        else:
            derivative = (field.flow(x0, t + h) - field.flow(x0, t - h)) / (2 * h)
        worst = max(worst, float((derivative - field.velocity(field.flow(x0, t), t)).abs().max()))
    return worst


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("kind", ["ot", "rotated", "rotation-180"])
def test_pair_field_is_the_derivative_of_its_flow_and_reproduces_the_pairs(d: int, kind: str) -> None:
    transport = _maps(d)[kind]
    field = AffinePairField(transport)
    x0 = torch.randn(6, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d))
    assert flow_residual(field, x0, TIMES) < 1e-7
    torch.testing.assert_close(field.flow(x0, 1.0), transport(x0))
    for t in TIMES:  # constant along each segment: v(x_t, t) = x1 - x0, zero loss
        torch.testing.assert_close(field.velocity(field.flow(x0, t), t), transport(x0) - x0)


def test_rotation_180_field_is_the_issue_formula_and_singular_at_one_half() -> None:
    field = AffinePairField(rotation_shift_map(2, 5.0))
    x = torch.randn(4, 2, dtype=torch.float64)
    for t in (0.1, 0.49, 0.51, 0.9):
        torch.testing.assert_close(field.velocity(x, t), 5.0 - 2 * (x - 5 * t) / (1 - 2 * t))
    assert bool(field.velocity(x, 0.5).isnan().all())


@pytest.mark.parametrize("d", [1, 3])
def test_independent_field_is_the_derivative_of_its_flow_and_ends_at_the_ot_map(d: int) -> None:
    mean, cov = torch.arange(d, dtype=torch.float64), _spd(d, 2)
    field = IndependentGaussianField(mean, cov)
    x0 = torch.randn(5, d, dtype=torch.float64)
    assert flow_residual(field, x0, TIMES) < 1e-7
    torch.testing.assert_close(field.flow(x0, 0.0), x0)
    torch.testing.assert_close(field.flow(x0, 1.0), gaussian_ot_map(mean, cov)(x0))
    torch.testing.assert_close(field.ot_map().matrix, gaussian_ot_map(mean, cov).matrix)
    isotropic = IndependentGaussianField(mean, 0.25 * torch.eye(d, dtype=torch.float64))
    reference = GaussianToGaussian(mean, std=0.5)  # tests/problems.py: the same field, written independently
    for t in (0.2, 0.6):
        torch.testing.assert_close(isotropic.velocity(x0, t), reference.velocity(x0, t))
    # its paths are not straight: the field is not the pair-consistent OT field
    x_half = field.flow(x0, 0.5)
    straight = AffinePairField(field.ot_map()).velocity(x_half, 0.5)
    assert float((field.velocity(x_half, 0.5) - straight).abs().max()) > 1e-3


class _NegatedTheta(AffinePairField):
    """Mutation: the sign of Theta flipped in the pair field."""

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        return 2 * self.mean - super().velocity(x, t)


class _WrongSignIndependent(IndependentGaussianField):
    """Mutation: (t M + (1 - t) I) instead of (t M - (1 - t) I)."""

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        tt = float(t)
        gain = torch.linalg.solve((1 - tt) ** 2 * self.eye + tt**2 * self.cov, tt * self.cov + (1 - tt) * self.eye)
        return self.mean + (x - tt * self.mean) @ gain.T


def test_mutation_wrong_sign_in_the_gaussian_field_is_caught() -> None:
    x0 = torch.randn(5, 3, dtype=torch.float64)
    for kind, transport in _maps(3).items():
        assert flow_residual(_NegatedTheta(transport), x0, TIMES) > 1e-2, kind
    mean, cov = torch.zeros(3, dtype=torch.float64), _spd(3)
    assert flow_residual(IndependentGaussianField(mean, cov), x0, TIMES) < 1e-7  # the unmutated twin passes
    assert flow_residual(_WrongSignIndependent(mean, cov), x0, TIMES) > 1e-2


@pytest.mark.parametrize("schedule", ["constant", "bridge"])
@pytest.mark.parametrize("kind", ["ot", "rotated", "rotation-180"])
def test_noisy_field_is_the_gaussian_conditional_mean(kind: str, schedule: str) -> None:
    transport = _maps(3)[kind]
    field = AffinePairField(transport, sigma=0.3, schedule=schedule)
    x = torch.randn(4, 3, dtype=torch.float64)
    for t in (0.2, 0.5, 0.8):
        gamma = float(noise_scale(torch.tensor([t]), 0.3, schedule))
        torch.testing.assert_close(field.velocity(x, t), brute_force_conditional_mean(transport, gamma, x, t))


@pytest.mark.parametrize("kind", ["ot", "rotation-180"])
def test_irreducible_loss_matches_monte_carlo(kind: str) -> None:
    transport, t, n = _maps(2)[kind], 0.45, 40_000
    field = AffinePairField(transport, sigma=0.2)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, dtype=torch.float64, generator=g)
    s = noisy_interpolant(x0, transport(x0), t, sigma=0.2, generator=g)
    losses = ((s.target - field.velocity(s.x_t, t)) ** 2).sum(1)
    expected = float(field.irreducible_loss(t))
    assert abs(float(losses.mean()) - expected) < 4 * float(losses.std()) / math.sqrt(n)
    assert float(AffinePairField(transport).irreducible_loss(0.3)) == pytest.approx(0.0, abs=1e-12)


def test_affine_model_has_zero_loss_and_zero_gradient_variance_at_its_pairing() -> None:
    d, n = 3, 256
    g = torch.Generator().manual_seed(1)
    maps = _maps(d)
    x0, t = torch.randn(n, d, dtype=torch.float64, generator=g), torch.rand(n, dtype=torch.float64, generator=g)
    rotated = maps["rotated"]
    model = AffinePairModel(rotated)
    torch.testing.assert_close(model(x0, t), AffinePairField(rotated).velocity(x0, t))
    clean = noisy_interpolant(x0, rotated(x0), t, sigma=0.0, generator=g)
    at_pairing = gradient_variance(model, flow_matching_loss, clean.x_t, clean.t, clean.target)
    assert at_pairing.loss < 1e-20 and at_pairing.trace < 1e-20
    ot_model = AffinePairModel(gaussian_ot_map(rotated.mean, rotated.matrix @ rotated.matrix.T))
    wrong = gradient_variance(ot_model, flow_matching_loss, clean.x_t, clean.t, clean.target)
    assert wrong.loss > 1e-2 and wrong.trace > 1e-2
    noisy = noisy_interpolant(x0, rotated(x0), t, sigma=0.05, generator=g)
    assert gradient_variance(model, flow_matching_loss, noisy.x_t, noisy.t, noisy.target).trace > 1e-6


def test_bad_input() -> None:
    transport = _maps(2)["ot"]
    with pytest.raises(ValueError, match="sigma"):
        AffinePairField(transport, sigma=-1.0)
    with pytest.raises(ValueError, match="schedule"):
        AffinePairField(transport, schedule="linear")
    with pytest.raises(ValueError, match="AffineMap"):
        AffinePairField(torch.eye(2))
    with pytest.raises(ValueError, match="sigma = 0"):
        AffinePairField(transport, sigma=0.1).flow(torch.zeros(1, 2, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="dimension"):
        AffinePairField(transport).velocity(torch.zeros(1, 3, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="positive definite"):
        IndependentGaussianField(torch.zeros(2, dtype=torch.float64), -torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="mean must have shape"):
        IndependentGaussianField(torch.zeros(3, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
