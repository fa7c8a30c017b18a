r"""Fixed-grid ODE solvers for a velocity field: Euler, Heun and RK4, with the denoiser form at t = 1.

A field is integrated along :math:`\frac{dx}{dt} = v(x, t)` from :math:`x(t_0) = x_0` over a grid
:math:`t_0 < t_1 < \dots < t_K` in [0, 1] (t = 0 noise, t = 1 data). The solvers live in the
registry :data:`SOLVERS`, each a step function with its declared order; :func:`integrate` is the one
entry point (the layout of torchdiffeq's ``odeint`` and ``fixed_grid.py``).

The flow matching field :math:`v(x, t) = (D(x, t) - x) / (1 - t)` divides by zero at t = 1. When the
grid ends at 1 and the field offers its denoiser :math:`D` (``posterior_mean``), the last step is
the exact Euler step of this denoiser form (``shared/notes/closed_form.md``):

.. math::

    x_K = x_{K-1} + (1 - t_{K-1})\,\frac{D(x_{K-1}, t_{K-1}) - x_{K-1}}{1 - t_{K-1}} = D(x_{K-1}, t_{K-1}),

for every method. Along the exact solution :math:`D(x(t), t) = x(t) + (1 - t) x'(t)`, so this step
has Euler's local error :math:`O((1 - t_{K-1})^2)`: on a uniform grid ending at 1 the error at t = 1 is
of order :math:`\min(p, 2)` in the step for a method of order p (measured in ``tests/test_ode.py``).
A field whose velocity is finite at t = 1 (a network, say) can offer
``posterior_mean(x, t) = x + (1 - t) velocity(x, t)``, which makes this last step its Euler step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor
from tqdm import tqdm

from fmlib._checks import (
    check_batch,
    check_choice,
    check_field,
    check_float,
    check_positive_int,
    check_times,
)

__all__ = [
    "ADAPTIVE_METHODS",
    "SOLVERS",
    "AdaptiveResult",
    "Field",
    "ODEResult",
    "Solver",
    "Velocity",
    "integrate",
    "integrate_adaptive",
    "time_grid",
]

Velocity = Callable[[Tensor, float], Tensor]
"""A velocity field v(x, t): x (B, d), t a float, result (B, d)."""


class Field(Protocol):
    """A velocity field object, e.g. :class:`fmlib.closed_form.ClosedFormField`.

    ``velocity(x, t)``: x (B, d), t a float, result (B, d). To be integrated up to t = 1 it also
    needs ``posterior_mean(x, t)``, (B, d): the denoiser D with velocity = (D - x) / (1 - t).
    """

    def velocity(self, x: Tensor, t: float) -> Tensor:
        """The velocity at (x, t), shape (B, d)."""
        ...


Step = Callable[[Velocity, Tensor, float, float], Tensor]
"""One step ``step(v, x, t, t_next)``: x (B, d) at time t to the solution at t_next, (B, d)."""


@dataclass(frozen=True)
class Solver:
    """A one-step method: its step function and its declared order of convergence."""

    order: int
    step: Step


@dataclass(frozen=True)
class ODEResult:
    """The outcome of :func:`integrate`.

    Attributes:
        x: (B, d) the solution at the last time of the grid.
        ts: (K + 1,) float64 CPU tensor, the time grid used.
        trajectory: (K + 1, B, d) the solution at every time of the grid (``trajectory[0]`` is
            ``x0``), or None when not requested.
    """

    x: Tensor
    ts: Tensor
    trajectory: Tensor | None


def _euler_step(v: Velocity, x: Tensor, t: float, t_next: float) -> Tensor:
    r"""Euler's method, order 1: :math:`x + h\, v(x, t)` with :math:`h = t_{next} - t`."""
    return x + (t_next - t) * v(x, t)


def _heun_step(v: Velocity, x: Tensor, t: float, t_next: float) -> Tensor:
    r"""Heun's method (explicit trapezoid), order 2.

    :math:`x + h (k_1 + k_2) / 2` with :math:`k_1 = v(x, t)`, :math:`k_2 = v(x + h k_1, t + h)`.
    """
    h = t_next - t
    k1 = v(x, t)
    k2 = v(x + h * k1, t_next)
    return x + (0.5 * h) * (k1 + k2)


def _rk4_step(v: Velocity, x: Tensor, t: float, t_next: float) -> Tensor:
    r"""The classical Runge-Kutta method, order 4: :math:`x + h (k_1 + 2 k_2 + 2 k_3 + k_4) / 6`."""
    h = t_next - t
    t_mid = t + 0.5 * h
    k1 = v(x, t)
    k2 = v(x + (0.5 * h) * k1, t_mid)
    k3 = v(x + (0.5 * h) * k2, t_mid)
    k4 = v(x + h * k3, t_next)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


SOLVERS: dict[str, Solver] = {
    "euler": Solver(order=1, step=_euler_step),
    "heun": Solver(order=2, step=_heun_step),
    "rk4": Solver(order=4, step=_rk4_step),
}
"""The fixed-grid methods by name."""


def time_grid(steps: int, *, t_start: float = 0.0, t_end: float = 1.0, spacing: str = "uniform") -> Tensor:
    r"""A time grid of ``steps`` steps from ``t_start`` to ``t_end``, uniform or refined toward ``t_end``.

    .. math::

        t_k = t_{start} + g(k / K)\, (t_{end} - t_{start}), \qquad k = 0, \dots, K, \qquad
        g(u) = u \ \text{(uniform)}, \quad g(u) = 1 - (1 - u)^2 \ \text{(quadratic)}

    The quadratic spacing takes steps of size O(1/K^2) near ``t_end``, where the optimal field is
    stiff (it scales like 1/(1 - t)); the last step before t = 1 then starts at
    :math:`1 - (1 - t_{start})/K^2`, where the posterior weights have concentrated.

    Args:
        steps: K >= 1, the number of steps.
        t_start: first time, in [0, 1).
        t_end: last time, in (t_start, 1].
        spacing: ``"uniform"`` or ``"quadratic"``.

    Returns:
        (K + 1,) float64 CPU tensor; its last entry is exactly ``t_end``.
    """
    steps = check_positive_int(steps, "steps")
    t_start = check_float(t_start, "t_start", low=0.0, high=1.0, high_open=True)
    t_end = check_float(t_end, "t_end", low=t_start, high=1.0, low_open=True)
    spacing = check_choice(spacing, ("uniform", "quadratic"), "spacing")
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if spacing == "quadratic":
        u = 1.0 - (1.0 - u) ** 2
    grid = t_start + u * (t_end - t_start)
    grid[-1] = t_end
    return grid


def integrate(
    field: Field | Velocity,
    x0: Tensor,
    ts: Tensor | Sequence[float],
    *,
    method: str = "euler",
    return_trajectory: bool = False,
    progress: bool = False,
) -> ODEResult:
    r"""Integrate :math:`\frac{dx}{dt} = v(x, t)` from ``x0`` at ``ts[0]`` over the grid ``ts``.

    .. math::

        x_{k+1} = \Phi_h(x_k, t_k), \quad h = t_{k+1} - t_k, \qquad
        x_K = D(x_{K-1}, t_{K-1}) \ \text{ when } t_K = 1,

    where :math:`\Phi_h` is one step of ``method`` (see :data:`SOLVERS`) and the last line is the
    denoiser form of the last step (module docstring).

    Args:
        field: an object with ``velocity(x, t)`` (and, to reach t = 1, ``posterior_mean(x, t)``,
            e.g. :class:`fmlib.closed_form.ClosedFormField`), or a plain callable ``v(x, t)``;
            t is passed as a Python float, x as a (B, d) tensor, and a (B, d) result is expected.
        x0: (B, d) initial points at time ``ts[0]``, float32 or float64.
        ts: (K + 1,) strictly increasing times in [0, 1], K >= 1 (e.g. :func:`time_grid`).
        method: a key of :data:`SOLVERS`: ``"euler"``, ``"heun"`` or ``"rk4"``.
        return_trajectory: also return the solution at every time of the grid.
        progress: show a tqdm progress bar over the steps.

    Returns:
        :class:`ODEResult` with ``x`` (B, d), ``ts`` (K + 1,) and ``trajectory`` (K + 1, B, d) or None.

    Raises:
        ValueError: unknown ``method``; malformed ``x0`` or ``ts``; ``ts`` ending at 1 for a field
            without ``posterior_mean``.
    """
    velocity = check_field(field)
    x0 = check_batch(x0, "x0")
    grid = check_times(ts, min_points=2)
    solver = SOLVERS[check_choice(method, SOLVERS, "method")]
    denoiser = getattr(field, "posterior_mean", None)
    times = grid.tolist()
    if times[-1] == 1.0 and not callable(denoiser):
        raise ValueError(
            "ts ends at t = 1, where the velocity divides by 1 - t, but the field has no "
            "posterior_mean(x, t) for the denoiser form of the last step; end ts below 1, or give "
            "the field posterior_mean(x, t) = x + (1 - t) velocity(x, t) if its velocity is finite at 1"
        )
    trajectory = None
    if return_trajectory:
        trajectory = x0.new_empty((len(times), *x0.shape))
        trajectory[0] = x0
    x = x0
    for k in tqdm(range(len(times) - 1), desc=f"integrate ({method})", disable=not progress):
        t, t_next = times[k], times[k + 1]
        x = denoiser(x, t) if t_next == 1.0 else solver.step(velocity, x, t, t_next)
        if trajectory is not None:
            trajectory[k + 1] = x
    return ODEResult(x=x, ts=grid, trajectory=trajectory)


ADAPTIVE_METHODS = ("RK23", "RK45", "DOP853")
"""The explicit adaptive Runge-Kutta pairs of ``scipy.integrate.solve_ivp`` that :func:`integrate_adaptive` offers."""


@dataclass(frozen=True)
class AdaptiveResult:
    """The outcome of :func:`integrate_adaptive`.

    Attributes:
        x: (B, d) the solution at ``t_end`` (nan where the solver failed).
        ts: (K + 1,) float64 CPU tensor, the times the solver accepted.
        evaluations: how many times the field was evaluated.
        success: whether the solver reached ``t_end``; message: its explanation.
    """

    x: Tensor
    ts: Tensor
    evaluations: int
    success: bool
    message: str


def integrate_adaptive(
    field: Field | Velocity,
    x0: Tensor,
    *,
    t_start: float = 0.0,
    t_end: float = 1.0,
    method: str = "RK45",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> AdaptiveResult:
    r"""Integrate :math:`\frac{dx}{dt} = v(x, t)` from ``x0`` with an adaptive step (``scipy.integrate.solve_ivp``).

    The batch is one system of B d equations, so all points share the step sizes (as in
    torchdiffeq's adaptive solvers); the step is accepted when the embedded error estimate is below
    ``atol + rtol |x|`` in every component. The field is evaluated in float64 on the CPU-side copy
    of the state and called with x (B, d) in the dtype and device of ``x0``. A field that returns a
    non-finite value makes the solver fail; then ``x`` is nan.

    Args:
        field: an object with ``velocity(x, t)`` or a callable ``v(x, t)`` (t a float).
        x0: (B, d) initial points at ``t_start``.
        t_start, t_end: the interval, 0 <= t_start < t_end <= 1.
        method: one of :data:`ADAPTIVE_METHODS`.
        rtol, atol: tolerances of the error control (> 0).

    Returns:
        :class:`AdaptiveResult`.
    """
    velocity = check_field(field)
    x0 = check_batch(x0, "x0")
    t_start = check_float(t_start, "t_start", low=0.0, high=1.0, high_open=True)
    t_end = check_float(t_end, "t_end", low=t_start, high=1.0, low_open=True)
    method = check_choice(method, ADAPTIVE_METHODS, "method")
    rtol = check_float(rtol, "rtol", low=0.0, low_open=True)
    atol = check_float(atol, "atol", low=0.0, low_open=True)
    shape, evaluations = x0.shape, 0

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        x = torch.from_numpy(y).reshape(shape).to(dtype=x0.dtype, device=x0.device)
        with torch.no_grad():
            v = velocity(x, float(t)).detach().double().cpu().numpy().reshape(-1)
        if not np.isfinite(v).all():
            raise FloatingPointError(f"the field is not finite at t = {t!r}")
        return v

    y0 = x0.detach().double().cpu().numpy().reshape(-1)
    try:
        sol = solve_ivp(rhs, (t_start, t_end), y0, method=method, rtol=rtol, atol=atol)
    except FloatingPointError as err:
        nan = torch.full_like(x0, float("nan"))
        return AdaptiveResult(x=nan, ts=torch.empty(0, dtype=torch.float64), evaluations=evaluations,
                              success=False, message=str(err))
    x = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(dtype=x0.dtype, device=x0.device)
    if not sol.success:
        x = torch.full_like(x0, float("nan"))
    return AdaptiveResult(x=x, ts=torch.from_numpy(sol.t.copy()), evaluations=evaluations, success=bool(sol.success),
                          message=str(sol.message))
