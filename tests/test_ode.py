"""fmlib.ode against exact solutions: convergence orders, the denoiser step at t = 1, shapes, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from fmlib.closed_form import ClosedFormField
from fmlib.ode import ADAPTIVE_METHODS, SOLVERS, ODEResult, integrate, integrate_adaptive, time_grid
from tests.problems import GaussianToGaussian, brute_force_distances, linear_ode_solution

METHODS = sorted(SOLVERS)


def _slope(steps: list[int], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(step size 1 / steps)."""
    log_h = torch.tensor([-math.log(k) for k in steps], dtype=torch.float64)
    log_e = torch.tensor([math.log(e) for e in errors], dtype=torch.float64)
    log_h, log_e = log_h - log_h.mean(), log_e - log_e.mean()
    return float((log_h * log_e).sum() / (log_h * log_h).sum())


@pytest.fixture
def gaussian_problem() -> tuple[GaussianToGaussian, Tensor]:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(3, generator=generator, dtype=torch.float64)
    x0 = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    return GaussianToGaussian(mean, std=0.5), x0


@pytest.mark.parametrize("method", METHODS)
def test_order_on_gaussian_to_gaussian_field(method: str, gaussian_problem) -> None:
    """Time-dependent field on [0, 0.9]: the slope of log error vs log step is the declared order."""
    field, x0 = gaussian_problem
    exact = field.flow(x0, 0.9)
    steps = [8, 16, 32, 64]
    errors = [
        float((integrate(field, x0, time_grid(k, t_end=0.9), method=method).x - exact).norm(dim=1).max()) for k in steps
    ]
    assert abs(_slope(steps, errors) - SOLVERS[method].order) < 0.3


@pytest.mark.parametrize("method", METHODS)
def test_order_on_linear_ode(method: str) -> None:
    """dx/dt = A x (a plain callable) on [0.1, 0.8] against the matrix exponential."""
    generator = torch.Generator().manual_seed(1)
    a = torch.tensor([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.3], [0.0, 0.4, -1.0]], dtype=torch.float64)
    x0 = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    exact = linear_ode_solution(a, x0, 0.1, 0.8)
    steps = [8, 16, 32, 64]
    errors = [
        float(
            (integrate(lambda x, t: x @ a.T, x0, time_grid(k, t_start=0.1, t_end=0.8), method=method).x - exact)
            .norm(dim=1)
            .max()
        )
        for k in steps
    ]
    assert abs(_slope(steps, errors) - SOLVERS[method].order) < 0.3


@pytest.mark.parametrize("method", METHODS)
def test_denoiser_last_step_converges_at_order_min_p_2(method: str, gaussian_problem) -> None:
    """A grid ending at 1 uses x <- D(x, t_K), Euler's local error O(h^2): global order min(p, 2)."""
    field, x0 = gaussian_problem
    exact = field.flow(x0, 1.0)
    steps = [16, 32, 64, 128]
    errors = [float((integrate(field, x0, time_grid(k), method=method).x - exact).norm(dim=1).max()) for k in steps]
    assert abs(_slope(steps, errors) - min(SOLVERS[method].order, 2)) < 0.3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", METHODS)
def test_closed_form_field_lands_on_training_points(method: str, dtype: torch.dtype) -> None:
    """Gao & Li, Theorem 4.6: from noise to t = 1 the optimal field ends on a training point."""
    generator = torch.Generator().manual_seed(2)
    data = (3.0 * torch.randn(6, 4, generator=generator, dtype=torch.float64)).to(dtype)
    x0 = torch.randn(10, 4, generator=generator, dtype=torch.float64).to(dtype)
    result = integrate(ClosedFormField(data), x0, time_grid(20), method=method)
    nearest = brute_force_distances(result.x, data).min(dim=1).values
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert float(nearest.max()) < tolerance
    assert result.x.dtype == dtype


def test_denoiser_step_is_exactly_posterior_mean() -> None:
    """The last step from t_K to 1 returns D(x_K, t_K) exactly, for the closed-form field."""
    generator = torch.Generator().manual_seed(3)
    data = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    field = ClosedFormField(data)
    x = torch.randn(7, 2, generator=generator, dtype=torch.float64)
    for method in METHODS:
        result = integrate(field, x, [0.6, 1.0], method=method)
        torch.testing.assert_close(result.x, field.posterior_mean(x, 0.6), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("batch", "d", "steps"), [(1, 1, 1), (3, 5, 4)])
def test_result_shapes(method: str, batch: int, d: int, steps: int) -> None:
    x0 = torch.randn(batch, d, dtype=torch.float64)
    ts = time_grid(steps, t_end=0.5)
    result = integrate(lambda x, t: -x, x0, ts, method=method, return_trajectory=True)
    assert isinstance(result, ODEResult)
    assert result.x.shape == (batch, d)
    assert result.trajectory is not None and result.trajectory.shape == (steps + 1, batch, d)
    torch.testing.assert_close(result.trajectory[0], x0)
    torch.testing.assert_close(result.trajectory[-1], result.x)
    torch.testing.assert_close(result.ts, ts)
    assert integrate(lambda x, t: -x, x0, ts, method=method).trajectory is None


def test_callable_receives_float_times_on_the_grid() -> None:
    seen: list[object] = []

    def v(x: Tensor, t: float) -> Tensor:
        seen.append(t)
        return torch.zeros_like(x)

    integrate(v, torch.zeros(2, 2), [0.0, 0.25, 0.5], method="heun")
    assert all(type(t) is float for t in seen)
    assert seen == [0.0, 0.25, 0.25, 0.5]


def test_sequence_grid_and_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    result = integrate(lambda x, t: x, torch.ones(1, 1, dtype=torch.float64), [0.0, 0.1, 0.2], progress=True)
    assert result.ts.dtype == torch.float64 and result.ts.tolist() == [0.0, 0.1, 0.2]
    torch.testing.assert_close(result.x, torch.full((1, 1), 1.1**2, dtype=torch.float64))
    assert "integrate (euler)" in capsys.readouterr().err


def test_time_grid() -> None:
    grid = time_grid(4, t_start=0.2, t_end=0.6)
    assert grid.dtype == torch.float64 and grid.shape == (5,)
    torch.testing.assert_close(grid, torch.tensor([0.2, 0.3, 0.4, 0.5, 0.6], dtype=torch.float64))
    assert time_grid(3)[-1].item() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, r"steps must be a positive integer, got 0"),
        ({"steps": 2.0}, r"steps must be a positive integer, got 2\.0"),
        ({"steps": 2, "t_start": 1.0}, r"t_start must lie in \[0, 1\), got 1\.0"),
        ({"steps": 2, "t_start": 0.5, "t_end": 0.5}, r"t_end must lie in \(0\.5, 1\], got 0\.5"),
    ],
)
def test_time_grid_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        time_grid(**kwargs)


def test_integrate_errors() -> None:
    x0 = torch.zeros(2, 3)
    field = ClosedFormField(torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"method='rk5' is not one of 'euler', 'heun', 'rk4'; did you mean 'rk4'\?"):
        integrate(field, x0, [0.0, 0.5], method="rk5")
    with pytest.raises(ValueError, match=r"no posterior_mean\(x, t\) for the denoiser form"):
        integrate(lambda x, t: x, x0, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"ts must be strictly increasing, got ts\[2\]=0\.2 after ts\[1\]=0\.5"):
        integrate(field, x0, [0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1\].*got ts\[1\]=1\.5"):
        integrate(field, x0, [0.0, 1.5])
    with pytest.raises(ValueError, match=r"ts must be 1-D with at least 2 time\(s\) in \[0, 1\], got shape \(1,\)"):
        integrate(field, x0, [0.0])
    with pytest.raises(ValueError, match=r"x0 must have shape \(B, d\).*got shape \(3,\)"):
        integrate(field, torch.zeros(3), [0.0, 0.5])
    with pytest.raises(ValueError, match=r"field must have a velocity\(x, t\) method or be a callable"):
        integrate(42, x0, [0.0, 0.5])


def test_quadratic_time_grid_refines_toward_the_end() -> None:
    grid = time_grid(10, spacing="quadratic")
    steps = grid.diff()
    assert grid[0].item() == 0.0 and grid[-1].item() == 1.0
    assert torch.all(steps[1:] < steps[:-1])  # steps shrink toward t = 1
    assert abs(1 - grid[-2].item() - 1 / 100) < 1e-12  # the last step starts at 1 - 1/K^2
    with pytest.raises(ValueError, match=r"spacing='cubic' is not one of 'quadratic', 'uniform'"):
        time_grid(10, spacing="cubic")


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_adaptive_solver_meets_its_tolerance(method: str, gaussian_problem) -> None:
    field, x0 = gaussian_problem
    result = integrate_adaptive(field, x0, t_end=0.9, method=method, rtol=1e-8, atol=1e-10)
    assert result.success and result.evaluations > 0 and float(result.ts[-1]) == pytest.approx(0.9)
    assert float((result.x - field.flow(x0, 0.9)).abs().max()) < 1e-6
    # mutation: a solver that ignores the field (returns x0) is far from the flow
    assert float((x0 - field.flow(x0, 0.9)).abs().max()) > 1e-2


def test_adaptive_solver_reports_a_field_that_is_not_finite() -> None:
    x0 = torch.ones(3, 2, dtype=torch.float64)
    result = integrate_adaptive(lambda x, t: x if t < 0.3 else x * float("nan"), x0, method="RK45")
    assert not result.success and bool(result.x.isnan().all()) and "not finite" in result.message
    with pytest.raises(ValueError, match="method"):
        integrate_adaptive(lambda x, t: x, x0, method="LSODA")
    with pytest.raises(ValueError, match="rtol"):
        integrate_adaptive(lambda x, t: x, x0, rtol=0.0)
