r"""Samples in the data's subspace: the off-span part of trajectories, OSDNet, and the teacher-student bound.

What the chapter ``notebooks/05_subspace.md`` computes (Gao & Li, arXiv 2410.23594, Section 5, whose
mathematics we could not read: every formula here is *our rendering*,
``shared/notes/gao_li_2410.23594.md``). Notation: :math:`U` (d, k) an orthonormal basis of the span of
the training points, :math:`P = I - U U^\top` the projector off the span.

- :func:`off_span_trajectories`: integrate a field from noise and measure :math:`\|P x(t)\|` and
  :math:`\|P v(x(t), t)\|` relative to :math:`\|P x(0)\|`, and the deviation from the exact law of the
  optimal field, :math:`P x(t) = (1 - t) P x(0)` (for :math:`u^*` the off-span velocity ratio is 1 at
  every t, and the sample ratio 0).
- :func:`generalisation`: copy fraction and nearest-neighbour distances of samples against held-out points.
- :func:`teacher_student`: the student's error along the teacher's path and Gronwall's bound
  (:func:`fmlib.theory.gronwall_endpoint_bound`) against the actual endpoint distance, with a
  certified Lipschitz constant (:func:`mlp_lipschitz`) and an uncertified Jacobian estimate
  (:func:`jacobian_lipschitz_estimate`).
- the verdict rules of the claims ``span-ode-law``, ``off-subspace-decay``, ``osdnet`` and
  ``teacher-student-bound`` (criteria in their docstrings, fixed before the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fmlib._checks import check_batch, check_field
from fmlib.experiments.verdicts import Finding, Verdict, graded, require
from fmlib.neighbours import copy_fraction, nearest_neighbor_distance
from fmlib.ode import Field, Velocity, integrate
from fmlib.osdnet import check_basis
from fmlib.theory import ACTIVATION_LIPSCHITZ, gronwall_endpoint_bound, mlp_lipschitz_bound

__all__ = [
    "Generalisation",
    "ModuleField",
    "OffSpan",
    "TeacherStudent",
    "generalisation",
    "jacobian_lipschitz_estimate",
    "mlp_lipschitz",
    "off_span",
    "off_span_trajectories",
    "off_subspace_decay_rule",
    "osdnet_rule",
    "span_ode_law_rule",
    "teacher_student",
    "teacher_student_rule",
]


def off_span(y: Tensor, basis: Tensor) -> Tensor:
    r""":math:`P y = y - U (U^\top y)` for rows y (..., d), with ``basis`` U (d, k) orthonormal."""
    u = basis.to(dtype=y.dtype, device=y.device)
    return y - (y @ u) @ u.T


@dataclass(frozen=True)
class OffSpan:
    r"""The off-span part along B trajectories of a field on a grid of K + 1 times.

    Attributes:
        times: (K + 1,) float64.
        path_ratio: (K + 1,) median over trajectories of :math:`\|P x(t)\| / \|P x(0)\|` (:math:`1 - t` for u*).
        velocity_ratio: (K + 1,) median of :math:`\|P v(x(t), t)\| / \|P x(0)\|` (1 for u*); NaN at t = 1.
        sample_ratio: (B,) :math:`\|P x(1)\| / \|P x(0)\|` at the last time (0 for u* at t = 1).
        law_deviation: :math:`\max_{t, b} \|P x(t) - (1 - t) P x(0)\| / \|P x(0)\|`, the distance to the
            exact law of u*.
        samples: (B, d) the end points x(t_K).
    """

    times: np.ndarray
    path_ratio: np.ndarray
    velocity_ratio: np.ndarray
    sample_ratio: np.ndarray
    law_deviation: float
    samples: Tensor


def off_span_trajectories(
    field: Field | Velocity, x0: Tensor, ts: Tensor, basis: Tensor, *, method: str = "euler"
) -> OffSpan:
    r"""Integrate ``field`` from ``x0`` over ``ts`` and measure its off-span part (see :class:`OffSpan`).

    Args:
        field: a field for :func:`fmlib.ode.integrate`.
        x0: (B, d) noise.
        ts: (K + 1,) grid from 0 (to 1 needs the field's ``posterior_mean``).
        basis: (d, k) orthonormal basis of the span (checked).
        method: a solver of :data:`fmlib.ode.SOLVERS`.
    """
    velocity = check_field(field)
    x0 = check_batch(x0, "x0")
    check_basis(basis)
    if basis.shape[0] != x0.shape[1]:
        raise ValueError(f"basis has d={basis.shape[0]} rows but x0 has d={x0.shape[1]}; they must match")
    result = integrate(field, x0, ts, method=method, return_trajectory=True)
    times = result.ts.numpy()
    off = off_span(result.trajectory.double(), basis)  # (K + 1, B, d)
    start = off[0].norm(dim=-1).clamp(min=1e-300)
    path = off.norm(dim=-1) / start
    law = (off - torch.from_numpy(1.0 - times).to(off)[:, None, None] * off[0]).norm(dim=-1) / start
    speed = torch.full_like(path, float("nan"))
    with torch.no_grad():
        for step, t in enumerate(times.tolist()):
            if t < 1.0:
                v = velocity(result.trajectory[step], t)
                speed[step] = off_span(v.double(), basis).norm(dim=-1) / start
    return OffSpan(
        times=times,
        path_ratio=path.median(dim=1).values.cpu().numpy(),
        velocity_ratio=speed.median(dim=1).values.cpu().numpy(),
        sample_ratio=path[-1].cpu().numpy(),
        law_deviation=float(law.max()),
        samples=result.x,
    )


def span_ode_law_rule(deviations: dict[str, float], endpoint: dict[str, float], *, tol: float = 1e-6) -> Finding:
    r"""Claim ``span-ode-law`` (an identity): :math:`P x(t) = (1 - t) P x(0)` along u* for every solver.

    Rule: every solver's relative deviation from the law (:attr:`OffSpan.law_deviation`) and every
    sample's relative off-span part at t = 1 are at most ``tol``; otherwise the run stops
    (:class:`~fmlib.experiments.verdicts.ClaimBroken`). Euler and Heun keep the law exactly (a
    telescoping product), RK4 too on this linear off-span equation up to round-off.

    Args:
        deviations: solver -> largest relative deviation from the law.
        endpoint: solver -> largest :math:`\|P x(1)\| / \|P x(0)\|`.
    """
    worst = max(deviations, key=deviations.get)
    require(deviations[worst] <= tol, "span-ode-law",
            f"{worst}: the off-span part deviates from (1 - t) P x(0) by {deviations[worst]:.2e} > {tol:g}")
    last = max(endpoint, key=endpoint.get)
    require(endpoint[last] <= tol, "span-ode-law",
            f"{last}: samples keep an off-span part {endpoint[last]:.2e} x |P x(0)| > {tol:g} at t = 1")
    return Finding(
        "span-ode-law", Verdict.REPRODUCED,
        f"largest deviation from (1 - t) P x(0): {deviations[worst]:.1e} ({worst}); off-span part at t = 1: "
        f"{endpoint[last]:.1e} x |P x(0)|, solvers {', '.join(deviations)}",
        f"identity: the run stops if a solver deviates by more than {tol:g}",
    )


def off_subspace_decay_rule(
    osdnet_ratio: float, mlp_ratio: float, coefficient_error: float, *, small: float = 0.05, close: float = 0.2
) -> Finding:
    r"""Claim ``off-subspace-decay``: a learned field's off-span part must decay; OSDNet's does, an MLP's need not.

    Inputs: the median :math:`\|P x(1)\| / \|P x(0)\|` of OSDNet's and of the unconstrained MLP's
    samples, and OSDNet's largest :math:`|b(t) + 1|` (:math:`b = (1 - t) a`, optimal -1) on the
    times checked. Rule (fixed before the run):

    - REPRODUCED: OSDNet's ratio <= ``small``, its coefficient within ``close`` of the optimum,
      and the MLP's ratio at least twice OSDNet's (the split is what removes the off-span part);
    - PARTLY: OSDNet's ratio <= ``small`` (its off-span part decays) but one of the other two fails;
    - NOT_REPRODUCED: OSDNet's samples keep more than ``small`` of their off-span start.
    """
    values = (osdnet_ratio, mlp_ratio, coefficient_error)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"ratios and coefficient error must be finite and >= 0, got {values}")
    decays = osdnet_ratio <= small
    full = decays and coefficient_error <= close and mlp_ratio >= 2 * osdnet_ratio
    return Finding(
        "off-subspace-decay", graded(full, decays),
        f"median |P x(1)| / |P x(0)|: OSDNet {osdnet_ratio:.3g}, MLP {mlp_ratio:.3g}; max |(1 - t) a(t) + 1| = "
        f"{coefficient_error:.3g}",
        f"reproduced if OSDNet's ratio <= {small:g}, |(1 - t) a(t) + 1| <= {close:g} and the MLP's ratio >= 2x "
        f"OSDNet's; partly if only OSDNet's ratio <= {small:g}; else not reproduced",
    )


@dataclass(frozen=True)
class Generalisation:
    r"""How samples sit among the training points, against held-out points of the same law.

    Attributes:
        copy_fraction: fraction of samples within 1/3 of their second-nearest distance of a training
            point (:func:`fmlib.neighbours.copy_fraction`).
        sample_distance: median distance of a sample to its nearest training point.
        held_out_distance: median distance of a held-out point to its nearest training point.
        held_out_copy_fraction: the copy fraction of the held-out points (the level of fresh data).
    """

    copy_fraction: float
    sample_distance: float
    held_out_distance: float
    held_out_copy_fraction: float

    @property
    def distance_ratio(self) -> float:
        """sample_distance / held_out_distance: about 1 for fresh-looking samples, 0 for copies."""
        return self.sample_distance / self.held_out_distance


def generalisation(samples: Tensor, train: Tensor, held_out: Tensor) -> Generalisation:
    """Copy fraction and nearest-neighbour distances of ``samples`` (B, d) and ``held_out`` (M, d) to ``train``."""
    train = train.to(samples)
    held_out = held_out.to(samples)
    return Generalisation(
        copy_fraction=copy_fraction(samples, train),
        sample_distance=float(nearest_neighbor_distance(samples, train).distance.median()),
        held_out_distance=float(nearest_neighbor_distance(held_out, train).distance.median()),
        held_out_copy_fraction=copy_fraction(held_out, train),
    )


def osdnet_rule(
    osdnet_ratio: float, mlp_ratio: float, found: Generalisation, *, small: float = 0.05, copies: float = 0.1
) -> Finding:
    r"""Claim ``osdnet``: splitting the field removes the off-span part and lets the in-span part generalise.

    Rule (fixed before the run), with the median sample off-span ratios and OSDNet's
    :class:`Generalisation`:

    - REPRODUCED: OSDNet's off-span ratio <= ``small`` and below the MLP's, AND it generalises:
      copy fraction <= ``copies`` and sample-to-training distances at least half the held-out ones;
    - PARTLY: one of the two halves holds;
    - NOT_REPRODUCED: neither.
    """
    clean = osdnet_ratio <= small and osdnet_ratio < mlp_ratio
    general = found.copy_fraction <= copies and found.distance_ratio >= 0.5
    return Finding(
        "osdnet", graded(clean and general, clean or general),
        f"off-span ratio OSDNet {osdnet_ratio:.3g} vs MLP {mlp_ratio:.3g}; OSDNet copy fraction "
        f"{found.copy_fraction:.2f}, NN distance {found.distance_ratio:.2f} x held-out's",
        f"reproduced if OSDNet's off-span ratio <= {small:g} and below the MLP's AND copy fraction <= {copies:g} "
        "with NN distances >= 0.5 x held-out's; partly if one half holds; else not reproduced",
    )


def mlp_lipschitz(net: nn.Module, d: int, activation: str) -> float:
    r"""Certified Lipschitz constant in x of a :class:`fmlib.nets.VelocityMLP` (input :math:`[x, t, \phi(t)]`).

    :func:`fmlib.theory.mlp_lipschitz_bound` on its ``nn.Linear`` layers, the first restricted to
    its first d columns (those that multiply x; the time features act as a bias).
    """
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears or linears[0].in_features < d:
        raise ValueError(f"net must be an MLP whose first nn.Linear takes x (d={d}) first")
    weights = [linears[0].weight[:, :d], *(m.weight for m in linears[1:])]
    return mlp_lipschitz_bound(weights, ACTIVATION_LIPSCHITZ[activation])


def jacobian_lipschitz_estimate(velocity: Velocity, points: Tensor, times: np.ndarray) -> float:
    r"""Largest spectral norm of the Jacobian :math:`\partial_x v(x, t)` over the given points and times.

    ``points`` (T, B, d), ``times`` (T,). An *estimate* of the Lipschitz constant over the region
    those points cover, **not certified**: the supremum between and beyond them can be larger.
    """
    worst = 0.0
    for x, t in zip(points, times.tolist(), strict=True):
        if t >= 1.0:
            continue
        def single(row: Tensor, t: float = t) -> Tensor:
            return velocity(row.unsqueeze(0), t).squeeze(0)

        jac = torch.vmap(torch.func.jacrev(single))(x.detach())
        worst = max(worst, float(torch.linalg.matrix_norm(jac.detach(), ord=2).max()))
    return worst


class ModuleField:
    r"""A network ``net(x, t)`` (x (B, d), t (B,)) as a field: ``velocity`` (differentiable) and ``posterior_mean``.

    :math:`D(x, t) = x + (1 - t)\, v(x, t)`, the denoiser form that makes the last step to t = 1 an Euler step.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def velocity(self, x: Tensor, t: float) -> Tensor:
        """:math:`v(x, t)`, (B, d), t a float."""
        return self.net(x, torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device))

    def posterior_mean(self, x: Tensor, t: float) -> Tensor:
        """:math:`x + (1 - t) v(x, t)`, (B, d)."""
        return x + (1.0 - t) * self.velocity(x, t)


@dataclass(frozen=True)
class TeacherStudent:
    r"""Teacher and student from the same noise, and Gronwall's bound on their endpoint distance.

    Attributes:
        times: (K + 1,) the Euler grid.
        error: (K + 1,) median over trajectories of :math:`\varepsilon(t) = \|v_T - v_S\|` on the teacher's path.
        distance: (B,) :math:`\|x_T(1) - x_S(1)\|`.
        bound_certified: (B,) the bound with the certified L.
        bound_estimated: (B,) the bound with the Jacobian estimate of L (not certified).
        lipschitz_certified, lipschitz_estimated: the two values of L.
    """

    times: np.ndarray
    error: np.ndarray
    distance: np.ndarray
    bound_certified: np.ndarray
    bound_estimated: np.ndarray
    lipschitz_certified: float
    lipschitz_estimated: float


def teacher_student(
    teacher: Field, student: nn.Module, x0: Tensor, ts: Tensor, lipschitz_certified: float, *, jacobian_points: int = 16
) -> TeacherStudent:
    r"""Euler trajectories of teacher and student from ``x0`` and :func:`fmlib.theory.gronwall_endpoint_bound`.

    :math:`\varepsilon(t_k) = \|v_T(x_k, t_k) - v_S(x_k, t_k)\|` on the teacher's Euler points
    :math:`x_k`; at t = 1 (the last point) it is not needed. ``student`` is a network ``net(x, t)``
    (t of shape (B,)), integrated as a :class:`ModuleField`. The Jacobian estimate of L is taken on
    the first ``jacobian_points`` trajectories of both fields.
    """
    x0 = check_batch(x0, "x0")
    student_field = ModuleField(student)
    v_teacher, v_student = check_field(teacher), student_field.velocity
    with torch.no_grad():
        t_run = integrate(teacher, x0, ts, method="euler", return_trajectory=True)
        s_run = integrate(student_field, x0, ts, method="euler", return_trajectory=True)
    times = t_run.ts.numpy()
    error = np.zeros((times.shape[0], x0.shape[0]))
    with torch.no_grad():
        for step, t in enumerate(times[:-1].tolist()):
            x = t_run.trajectory[step]
            error[step] = (v_teacher(x, t) - v_student(x, t)).double().norm(dim=1).cpu().numpy()
    distance = (t_run.x - s_run.x).double().norm(dim=1).cpu().numpy()
    region = torch.cat([t_run.trajectory[:, :jacobian_points], s_run.trajectory[:, :jacobian_points]], dim=1)
    estimated = jacobian_lipschitz_estimate(v_student, region, times)
    return TeacherStudent(
        times=times,
        error=np.median(error, axis=1),
        distance=distance,
        bound_certified=gronwall_endpoint_bound(times, error, lipschitz_certified),
        bound_estimated=gronwall_endpoint_bound(times, error, estimated),
        lipschitz_certified=lipschitz_certified,
        lipschitz_estimated=estimated,
    )


def teacher_student_rule(result: TeacherStudent, *, informative: float = 10.0, rtol: float = 1e-6) -> Finding:
    r"""Claim ``teacher-student-bound``: the student's error bounds the distance of its samples to the teacher's.

    The inequality with the certified L is a theorem (Gronwall, Euler form): if any trajectory
    exceeds its bound (beyond ``rtol`` of round-off) the run stops. The verdict says whether the
    bound is *useful*, with the median slack bound / distance:

    - REPRODUCED: the certified bound holds and its median slack is <= ``informative``;
    - PARTLY: it holds but is looser, while the bound with the Jacobian estimate of L (not
      certified) holds on >= 95% of trajectories with median slack <= ``informative``;
    - NOT_REPRODUCED: the bound holds but is uninformative even with the estimated L.
    """
    over = result.distance > result.bound_certified * (1 + rtol) + rtol
    require(not over.any(), "teacher-student-bound",
            f"{int(over.sum())} trajectories exceed Gronwall's bound, certified L = {result.lipschitz_certified:.3g} "
            f"(largest excess {float(np.max(result.distance - result.bound_certified)):.3g} over)")
    moved = result.distance > 0
    slack = float(np.median(result.bound_certified[moved] / result.distance[moved])) if moved.any() else 1.0
    slack_est = float(np.median(result.bound_estimated[moved] / result.distance[moved])) if moved.any() else 1.0
    held_est = float(np.mean(result.distance <= result.bound_estimated * (1 + rtol) + rtol))
    return Finding(
        "teacher-student-bound",
        graded(slack <= informative, held_est >= 0.95 and slack_est <= informative),
        f"certified L = {result.lipschitz_certified:.3g}: bound holds on all {result.distance.size} trajectories, "
        f"median slack {slack:.3g}; estimated L = {result.lipschitz_estimated:.3g}: holds on {100 * held_est:.0f}%, "
        f"median slack {slack_est:.3g}",
        f"theorem: the run stops if the certified bound fails; reproduced if its median slack <= {informative:g}; "
        f"partly if only the bound with the estimated L is (held on >= 95%, slack <= {informative:g}); "
        "else not reproduced",
    )
