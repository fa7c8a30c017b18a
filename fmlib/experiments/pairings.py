r"""Pairings, gradient variance and noise (Reu et al., arXiv 2510.18118): what the chapter
``notebooks/06_pairings.md`` computes, and the verdict rules of its three claims.

Source notes: ``shared/notes/reu_2510.18118.md`` (the abstract and introduction were read; the
formulas and numbers come from a summary; no public code). The fields, couplings and per-sample
gradients are the numerics of :mod:`fmlib.gaussian`, :mod:`fmlib.couplings` and
:mod:`fmlib.gradients`; this module loops over configurations and keeps the books.

1. :func:`gaussian_variance` - Gaussian to Gaussian in several dimensions: loss and trace of the
   per-sample gradient covariance of the linear-in-x class :class:`fmlib.gaussian.AffinePairModel`
   at the OT field and at a rotated field, on OT pairs and on rotated pairs, at sigma = 0 and > 0;
   rule :func:`pairing_zero_variance_rule` (claim ``pairing-zero-variance``).
2. :func:`solver_study` - where a field takes the training sources, on fixed grids with odd and
   even step counts and with adaptive solvers: distance of each endpoint to its paired target and to
   its OT partner (:func:`endpoint_distances`); rule :func:`rotation_example_rule` (claim
   ``rotation-example``).
3. :func:`noise_generalises_rule` (claim ``noise-generalises``): over experiments, does sigma > 0
   move the endpoints from the paired targets to the OT partners?
4. :data:`SUMMARY_MMD`: the Gaussian-mixture MMD numbers of the summary, to be shown beside ours.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from fmlib._checks import check_batch, check_choice, check_float, check_positive_int, check_same_shape
from fmlib.couplings import (
    NOISE_SCHEDULES,
    AffineMap,
    ShuffledPairs,
    check_sigma,
    gaussian_ot_map,
    minibatch_ot,
    noisy_interpolant,
    plane_rotation,
    register_pairs,
    rotated_ot_map,
    rotation_shift_map,
    shuffled_ot_pairs,
)
from fmlib.data import make_digits, make_gaussian_mixture
from fmlib.experiments.verdicts import Finding, graded, require
from fmlib.gaussian import AffinePairField, AffinePairModel
from fmlib.generalisation import distance_to_training, mmd, mmd_spread, mmd_to_training_set
from fmlib.gradients import flow_matching_loss, gradient_variance
from fmlib.ode import ADAPTIVE_METHODS, SOLVERS, integrate, integrate_adaptive, time_grid
from fmlib.train import TrainConfig, TrainedModel, train_or_load

__all__ = [
    "SUMMARY_MMD",
    "EndpointDistances",
    "GaussianVariance",
    "MixtureResult",
    "Recipe",
    "RotationResult",
    "ShuffledResult",
    "SolverStudy",
    "endpoint_distances",
    "endpoint_sides",
    "figure_rotation",
    "gaussian_problem",
    "gaussian_variance",
    "largest_radial_rate",
    "mixture_experiment",
    "mixture_summary",
    "near_half",
    "noise_cost_ratios",
    "noise_cost_sentence",
    "noise_generalises_rule",
    "noise_summary",
    "pairing_zero_variance_rule",
    "rotation_example_rule",
    "rotation_experiment",
    "rotation_summary",
    "run_name",
    "shuffled_experiment",
    "shuffled_summary",
    "solver_study",
    "winding_angles",
]

ZERO_CLAIM = "pairing-zero-variance"
ROTATION_CLAIM = "rotation-example"
NOISE_CLAIM = "noise-generalises"

SUMMARY_MMD = pd.DataFrame(
    {
        "d": [3, 3, 50, 50],
        "sigma": [0.0, 0.05, 0.0, 0.05],
        "MMD to held-out data (generalisation)": [0.0034, 0.0018, 0.0021, 0.0020],
        "MMD to the training pairs (memorisation)": [1.758e-6, 3.105e-5, 9.089e-6, 6.09e-5],
    }
)
"""Reu et al.'s Gaussian-mixture table as a summary of the paper gives it (``shared/notes/reu_2510.18118.md``;
not checked against the PDF; kernel, sample sizes and pairing unknown)."""


# --------------------------------------------------------------------------------------------
# 1. Gaussian to Gaussian: loss and gradient variance in the linear-in-x class


def gaussian_problem(d: int, *, angle: float = math.pi / 2, seed: int = 0) -> dict[str, AffineMap]:
    r"""The OT map and a rotated map from N(0, I_d) to :math:`N(\mathbf{1}, M)`, float64.

    :math:`M = Q \operatorname{diag}(\lambda) Q^T` with :math:`\lambda` evenly spaced in [0.5, 2]
    and Q a random orthogonal matrix (``seed``); the rotation R is :func:`fmlib.couplings.plane_rotation`
    by ``angle`` in each coordinate plane.

    Returns:
        ``{"OT": mu + M^(1/2) x, "rotated": mu + M^(1/2) R x}``.

    Raises:
        ValueError: the rotated pairing's field is singular somewhere on [0, 1] (B_t not invertible):
            choose a smaller ``angle``.
    """
    d = check_positive_int(d, "d")
    angle = check_float(angle, "angle", low=-math.pi, high=math.pi, low_open=True, high_open=True)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    cov = (q * torch.linspace(0.5, 2.0, d, dtype=torch.float64)) @ q.T
    cov = (cov + cov.T) / 2
    mean = torch.ones(d, dtype=torch.float64)
    maps = {"OT": gaussian_ot_map(mean, cov), "rotated": rotated_ot_map(mean, cov, plane_rotation(d, angle))}
    eye = torch.eye(d, dtype=torch.float64)
    smallest = min(
        float(torch.linalg.svdvals((1 - t) * eye + t * maps["rotated"].matrix).min())
        for t in np.linspace(0.0, 1.0, 201)
    )
    if smallest < 1e-3:
        raise ValueError(f"angle={angle!r}: the rotated pairing's field is singular on [0, 1] (smallest singular "
                         f"value of B_t {smallest:.2g}); choose a smaller angle")
    return maps


@dataclass(frozen=True)
class GaussianVariance:
    """Loss and gradient variance of the linear-in-x class, per configuration.

    Attributes:
        table: one row per (d, pairs, field, sigma): ``loss`` (mean per-sample loss), ``trace`` (trace of
            the per-sample gradient covariance), ``least_loss`` (the closed-form least loss over all
            fields for these pairs and sigma, :meth:`fmlib.gaussian.AffinePairField.irreducible_loss`
            averaged over t), ``matched`` (the field is the one of the pairs).
        samples: samples per configuration. schedule: the noise schedule. angle: the rotation.
    """

    table: pd.DataFrame
    samples: int
    schedule: str
    angle: float


def gaussian_variance(
    dims: Sequence[int],
    sigmas: Sequence[float] = (0.0, 0.05),
    *,
    samples: int = 2000,
    angle: float = math.pi / 2,
    schedule: str = "constant",
    seed: int = 0,
    chunk_size: int = 512,
) -> GaussianVariance:
    r"""Loss and trace of the gradient covariance at the OT and the rotated field, on OT and rotated pairs.

    For each d: pairs :math:`x_1 = T(x_0)` of :func:`gaussian_problem`, t uniform, the noisy interpolant
    at each sigma (the same :math:`x_0, t, z` for every configuration of a d), and the model
    :class:`fmlib.gaussian.AffinePairModel` at the parameters of each map; :func:`fmlib.gradients.gradient_variance`
    over the ``samples`` per-sample losses :math:`\|v(x_t, t) - (x_1 - x_0)\|^2`.
    """
    sigmas = [check_sigma(s) for s in sigmas]
    samples = check_positive_int(samples, "samples")
    schedule = check_choice(schedule, NOISE_SCHEDULES, "schedule")
    quadrature = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # midpoint rule in t
    rows = []
    for d in dims:
        maps = gaussian_problem(d, angle=angle, seed=seed + d)
        g = torch.Generator().manual_seed(seed + 1000 + d)
        x0 = torch.randn(samples, d, generator=g, dtype=torch.float64)
        t = torch.rand(samples, generator=g, dtype=torch.float64)
        z_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
        for pairs, transport in maps.items():
            for sigma in sigmas:
                s = noisy_interpolant(x0, transport(x0), t, sigma=sigma, schedule=schedule,
                                      generator=torch.Generator().manual_seed(z_seed))
                least = float(AffinePairField(transport, sigma, schedule).irreducible_loss(quadrature).mean())
                for field, field_map in maps.items():
                    stats = gradient_variance(AffinePairModel(field_map), flow_matching_loss, s.x_t, s.t, s.target,
                                              chunk_size=chunk_size)
                    rows.append({"d": d, "pairs": pairs, "field": field, "sigma": sigma, "loss": stats.loss,
                                 "trace": stats.trace, "least_loss": least, "matched": pairs == field})
    return GaussianVariance(table=pd.DataFrame(rows), samples=samples, schedule=schedule, angle=angle)


def pairing_zero_variance_rule(result: GaussianVariance, *, zero: float = 1e-12, positive: float = 1e-6) -> Finding:
    """Claim ``pairing-zero-variance``: the field of a deterministic pairing has zero loss and zero variance.

    Identity (``require``, stops the run when broken): at sigma = 0 the matched field has loss and
    trace <= ``zero`` times the largest trace of the table (relative: float64 round-off), for the OT
    and the rotated pairs in every d.
    Verdict, on two contrasts that make the zero informative: (a) at sigma = 0 every mismatched field
    has trace > ``positive``; (b) at every sigma > 0 the matched field has trace > ``positive``.
    REPRODUCED if (a) and (b) hold in every d; PARTLY if one of them holds in every d, or both in
    some d; NOT_REPRODUCED otherwise (the variance does not single out the pairing's field).
    """
    table = result.table
    scale = max(float(table["trace"].abs().max()), 1.0)
    clean = table[table["sigma"] == 0]
    require(not clean.empty, ZERO_CLAIM, "no configuration at sigma = 0: the identity cannot be checked")
    matched = clean[clean["matched"]]
    worst = float(matched[["loss", "trace"]].abs().to_numpy().max())
    require(worst <= zero * scale, ZERO_CLAIM,
            f"at sigma = 0 the pairing's own field has loss or gradient variance {worst:.3g} > {zero:g} x {scale:.3g}")
    noisy = table[(table["sigma"] > 0) & table["matched"]]
    mismatched = clean[~clean["matched"]]
    a = mismatched.groupby("d")["trace"].min() > positive
    b = noisy.groupby("d")["trace"].min() > positive if not noisy.empty else pd.Series(dtype=bool)
    dims = sorted(int(d) for d in table["d"].unique())
    a_all = bool(a.reindex(dims, fill_value=False).all())
    b_all = bool(b.reindex(dims, fill_value=False).all())
    both_some = bool((a.reindex(dims, fill_value=False) & b.reindex(dims, fill_value=False)).any())
    verdict = graded(a_all and b_all, a_all or b_all or both_some)
    sigma_pos = ", ".join(f"{s:g}" for s in sorted(float(s) for s in table.loc[table["sigma"] > 0, "sigma"].unique()))
    number = (f"d = {', '.join(map(str, dims))}: pairing's field at sigma 0 max |loss|, |trace| {worst:.1e}; "
              f"mismatched field min trace {float(mismatched['trace'].min()):.3g}; pairing's field at sigma "
              f"{sigma_pos or 'none > 0'} min trace "
              f"{float(noisy['trace'].min()) if not noisy.empty else float('nan'):.3g}")
    rule = (f"identity: pairing's field has loss and trace <= {zero:g} x largest trace at sigma 0 (else the run "
            "stops); "
            f"reproduced if in every d the mismatched field (sigma 0) and the pairing's field (sigma > 0) both have "
            f"trace > {positive:g}, partly if one of the two holds in every d or both in some d")
    return Finding(ZERO_CLAIM, verdict, number, rule)


def noise_cost_ratios(result: GaussianVariance) -> pd.Series:
    """Per d, the rotated pairing's loss over the OT pairing's, each at its own field, at the first sigma > 0.

    Index d; empty when the table has no sigma > 0. What the noise costs the rotated pairs relative
    to the OT pairs, one ratio per dimension (the chapter quotes their median, not a ratio of medians).
    """
    table = result.table
    noisy = table[table["matched"] & (table["sigma"] > 0)]
    if noisy.empty:
        return pd.Series(dtype=np.float64, name="rotated / OT loss")
    noisy = noisy[noisy["sigma"] == noisy["sigma"].min()]
    loss = noisy.pivot_table(index="d", columns="pairs", values="loss")
    return (loss["rotated"] / loss["OT"]).rename("rotated / OT loss")


def noise_cost_sentence(ratios: pd.Series) -> str:
    """The chapter's sentence on :func:`noise_cost_ratios`: the median over d of the per-d ratios, their range."""
    if ratios.empty:
        return "No run with noise: the two pairings' losses are not compared."
    median = float(ratios.median())
    spread = (f"median over the {ratios.size} dimensions of the ratio of their losses {median:.1f}, from "
              f"{float(ratios.min()):.1f} to {float(ratios.max()):.1f}") if ratios.size > 1 else (
              f"ratio of their losses {median:.1f} in d = {int(ratios.index[0])}")
    more = median > 1
    return (f"The rotated pairing pays {'more' if more else 'less'} for the noise than the OT pairing ({spread})"
            + (": its map is further from the identity, so the same displacement of x_t stands for a larger "
               "change of x_0." if more else "."))


# --------------------------------------------------------------------------------------------
# 2. Where a field takes the training sources, solver by solver


@dataclass(frozen=True)
class EndpointDistances:
    """Distances of endpoints to their paired targets and to their OT partners (non-finite endpoints excluded).

    Attributes:
        to_pair, to_ot: mean distances over the finite endpoints (nan when none is finite).
        closer_to_pair, closer_to_ot: fractions of ALL endpoints at least ``margin`` (2) times closer to
            the paired target than to the OT partner, and the reverse; an endpoint in between (e.g. a
            source that never moved, about equally far from both) and a non-finite one count in neither.
        finite: fraction of finite endpoints.
    """

    to_pair: float
    to_ot: float
    closer_to_pair: float
    closer_to_ot: float
    finite: float


def endpoint_distances(x: Tensor, paired: Tensor, ot_partner: Tensor, *, margin: float = 2.0) -> EndpointDistances:
    """Compare endpoints x (B, d) with their paired targets and OT partners (both (B, d)).

    An endpoint counts for a partner when it is at least ``margin`` (>= 1) times closer to it than to
    the other. The margin was added in review: with a plain "closer" (margin 1) the sources themselves
    (a solver that ignores the field) counted 40-49% "closer to the pair" in the 180-degree example,
    near the rules' 1/2.
    """
    margin = check_float(margin, "margin", low=1.0)
    x = check_batch(x, "x")
    paired = check_same_shape(paired.to(x), x, "paired", "x")
    ot_partner = check_same_shape(ot_partner.to(x), x, "ot_partner", "x")
    finite = torch.isfinite(x).all(dim=1)
    d_pair, d_ot = (x - paired).norm(dim=1), (x - ot_partner).norm(dim=1)
    sides = _sides(d_pair, d_ot, margin)
    some = bool(finite.any())
    return EndpointDistances(
        to_pair=float(d_pair[finite].mean()) if some else math.nan,
        to_ot=float(d_ot[finite].mean()) if some else math.nan,
        closer_to_pair=float((sides == 1).double().mean()),
        closer_to_ot=float((sides == -1).double().mean()),
        finite=float(finite.double().mean()),
    )


def _sides(d_pair: Tensor, d_ot: Tensor, margin: float) -> Tensor:
    """1 where ``margin`` times the distance to the pair is below that to the OT partner, -1 for the reverse, else 0
    (a non-finite distance compares False both ways: 0)."""
    return (margin * d_pair < d_ot).long() - (margin * d_ot < d_pair).long()


@dataclass(frozen=True)
class SolverStudy:
    """Endpoints of one field from the training sources, per solver.

    Attributes:
        table: one row per solver: ``solver`` (e.g. ``euler-99``, ``rk4-100``, ``RK45``), ``method``,
            ``steps`` (0 for adaptive), ``node_at_half`` (a grid time or a stage time is exactly 1/2),
            ``evaluations`` (of the field), and the fields of :class:`EndpointDistances`.
        endpoints: solver -> (B, d) endpoints.
    """

    table: pd.DataFrame
    endpoints: dict[str, Tensor]


_STAGES = {"euler": (0.0,), "heun": (0.0, 1.0), "rk4": (0.0, 0.5, 1.0)}
"""Where in a step (fraction of h) each fixed-grid method evaluates the field."""


def _hits_half(method: str, steps: int) -> bool:
    """Whether the uniform grid of ``steps`` steps evaluates ``method``'s field at exactly t = 1/2."""
    return any(abs((k + c) / steps - 0.5) < 1e-12 for k in range(steps) for c in _STAGES[method])


def solver_study(
    field: object,
    x0: Tensor,
    paired: Tensor,
    ot_partner: Tensor,
    *,
    steps: Sequence[int] = (99, 100),
    methods: Sequence[str] = ("euler", "rk4"),
    adaptive: Sequence[str] = ("RK45",),
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> SolverStudy:
    """Integrate ``field`` from ``x0`` (B, d) to t = 1 with each fixed-grid method and step count (uniform
    grids, :func:`fmlib.ode.integrate`) and each adaptive method (:func:`fmlib.ode.integrate_adaptive`),
    and compare the endpoints with ``paired`` and ``ot_partner`` (:func:`endpoint_distances`).

    A field that is not finite somewhere on the way gives nan endpoints (counted as not finite).
    """
    x0 = check_batch(x0, "x0")
    for method in methods:
        check_choice(method, SOLVERS, "method")
    for method in adaptive:
        check_choice(method, ADAPTIVE_METHODS, "adaptive")
    evaluations = 0
    velocity = field.velocity

    class Counted:
        """The field, counting evaluations (a solver's cost)."""

        def velocity(self, x: Tensor, t: float) -> Tensor:
            nonlocal evaluations
            evaluations += 1
            return velocity(x, t)

        def posterior_mean(self, x: Tensor, t: float) -> Tensor:
            return x + (1 - t) * self.velocity(x, t)

    rows, endpoints = [], {}
    for method in methods:
        for k in steps:
            evaluations = 0
            with torch.no_grad():
                x = integrate(Counted(), x0, time_grid(check_positive_int(k, "steps")), method=method).x
            name = f"{method}-{k}"
            endpoints[name] = x
            rows.append({"solver": name, "method": method, "steps": k, "node_at_half": _hits_half(method, k),
                         "evaluations": evaluations, **vars(endpoint_distances(x, paired, ot_partner))})
    for method in adaptive:
        result = integrate_adaptive(field, x0, method=method, rtol=rtol, atol=atol)
        endpoints[method] = result.x
        rows.append({"solver": method, "method": method, "steps": 0, "node_at_half": False,
                     "evaluations": result.evaluations, **vars(endpoint_distances(result.x, paired, ot_partner))})
    return SolverStudy(table=pd.DataFrame(rows), endpoints=endpoints)


def rotation_example_rule(study: SolverStudy, *, majority: float = 0.9) -> Finding:
    """Claim ``rotation-example``: deterministic (sigma = 0) training learns the pairing and reproduces the pairs.

    ``study`` is the :func:`solver_study` of the network trained at sigma = 0, from its training
    sources. Per solver, m = fraction of endpoints at least twice as close to the paired target as to
    the OT image (:func:`endpoint_distances`).
    REPRODUCED if m >= ``majority`` for every solver (the network reproduces the pairs, whatever the
    grid); PARTLY if m >= ``majority`` for some solver but not all (the result hinges on the solver),
    or the median m over solvers is >= 1/2; NOT_REPRODUCED otherwise.
    """
    m = study.table.set_index("solver")["closer_to_pair"]
    verdict = graded(bool((m >= majority).all()), bool((m >= majority).any()) or float(m.median()) >= 0.5)
    number = "sigma 0, fraction of training sources ending >= 2x closer to their pair than to the OT image: "
    number += ", ".join(f"{name} {value:.2f}" for name, value in m.items())
    rule = (f"reproduced if the fraction is >= {majority} for every solver; partly if for some solver, or if its "
            "median over solvers is >= 0.5; else not reproduced")
    return Finding(ROTATION_CLAIM, verdict, number, rule)


# --------------------------------------------------------------------------------------------
# 3. Does noise move the endpoints from the pairs to the OT partners?


def noise_generalises_rule(
    experiments: Mapping[str, Mapping[float, EndpointDistances]], *, sigma: float = 0.05, gain: float = 0.25
) -> Finding:
    """Claim ``noise-generalises``: a little interpolant noise restores generalisation.

    ``experiments`` maps a name to ``{0.0: EndpointDistances at sigma 0, sigma: ... at sigma}``, each
    comparing endpoints with the paired (memorised) targets and the OT (generalising) partners. An
    experiment *shows the effect* when at ``sigma`` the fraction (at least twice) closer to the OT partner is >= 1/2
    AND exceeds the fraction at sigma = 0 by >= ``gain``. REPRODUCED if every experiment shows it;
    PARTLY if at least one does; NOT_REPRODUCED if none does.
    """
    require_keys = [name for name, runs in experiments.items() if 0.0 not in runs or sigma not in runs]
    if require_keys or not experiments:
        raise ValueError(f"every experiment needs runs at sigma 0 and {sigma}; missing in {require_keys or 'all'}")
    shows = {name: runs[sigma].closer_to_ot >= 0.5 and runs[sigma].closer_to_ot - runs[0.0].closer_to_ot >= gain
             for name, runs in experiments.items()}
    verdict = graded(all(shows.values()), any(shows.values()))
    number = "fraction >= 2x closer to the OT partner, sigma 0 -> " + f"{sigma:g}: " + "; ".join(
        f"{name} {runs[0.0].closer_to_ot:.2f} -> {runs[sigma].closer_to_ot:.2f}" for name, runs in experiments.items())
    rule = (f"an experiment shows the effect if at sigma {sigma:g} at least half of the endpoints are >= 2x closer "
            f"to the OT partner and that fraction grew by >= {gain} from sigma 0; reproduced if all show it, "
            "partly if some")
    return Finding(NOISE_CLAIM, verdict, number, rule)


# --------------------------------------------------------------------------------------------
# Training on fixed pairs (the loss "paired" of fmlib.couplings through fmlib.train)


@dataclass(frozen=True)
class Recipe:
    """The small velocity MLP of the chapter and its optimisation (:class:`fmlib.train.TrainConfig` less the loss).

    Every model of the chapter is trained with it on fixed pairs (:func:`fmlib.couplings.register_pairs`)
    and stored by :func:`fmlib.train.train_or_load` under a key of all of it, the pairs and sigma.
    """

    net_options: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"width": 128, "depth": 3, "time_features": 16}
    )
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    store: str | None = None
    progress: bool = False

    def train(self, x0: Tensor, x1: Tensor, sigma: float, schedule: str = "constant") -> TrainedModel:
        """Train (or load) the MLP on the pairs (x0, x1), both (n, d), with noise ``sigma`` and ``schedule``."""
        key = register_pairs(x0, x1)
        config = TrainConfig(
            net="mlp",
            net_options=dict(self.net_options),
            loss="paired",
            loss_options={"pairs": key, "sigma": check_sigma(sigma), "schedule": schedule},
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
        )
        return train_or_load(config, x1.float(), store=self.store, device=self.device, progress=self.progress)


def _endpoints(model: TrainedModel, x0: Tensor, steps: int, method: str = "euler") -> Tensor:
    """Integrate the EMA network from ``x0`` over a uniform grid to t = 1; (B, d) on the CPU, float32."""
    device = next(model.ema.parameters()).device
    return integrate(model.field(), x0.float().to(device), time_grid(steps), method=method).x.cpu()


# --------------------------------------------------------------------------------------------
# 2. The 180-degree example


def winding_angles(trajectory: Tensor, ts: Tensor, shift: float = 5.0) -> Tensor:
    r"""The angle each 2-D trajectory turns around the moving centre :math:`s t \mathbf{1}`, from t = 0 to 1.

    With :math:`y(t) = x(t) - s t \mathbf{1}`, the paired target gives :math:`y(1) = -y(0)` (a half
    turn, :math:`\pm\pi`) and the OT image :math:`y(1) = y(0)` (0). The angle of y is unwrapped
    along the grid, so a trajectory that passes through the centre between two grid times jumps by
    about :math:`\pm\pi`.

    Args:
        trajectory: (K + 1, B, 2) positions on the grid ``ts`` (K + 1,).

    Returns:
        (B,) float64 angles in radians.
    """
    y = trajectory.double().cpu() - shift * ts.double()[:, None, None]
    angle = np.unwrap(torch.atan2(y[..., 1], y[..., 0]).numpy(), axis=0)
    return torch.from_numpy(angle[-1] - angle[0])


def near_half(model: TrainedModel, ts: Sequence[float], shift: float = 5.0) -> pd.DataFrame:
    r"""The network's Jacobian at the moving centre :math:`m(t) = s t \mathbf{1}` (2-D), split in two rates.

    ``radial`` = tr(J)/2 (contraction < 0, expansion > 0) and ``rotation`` = (J_21 - J_12)/2 (the
    angular velocity of the flow around m). The pair-consistent field has radial rate
    :math:`-2/(1 - 2t)` and no rotation; the noisy optimum :math:`-2b/(b^2 + \gamma^2)`, b = 1 - 2t.
    """
    net = model.ema
    parameter = next(net.parameters())
    rows = []
    for t in ts:
        centre = torch.full((2,), shift * t, dtype=parameter.dtype, device=parameter.device)
        time = torch.full((1,), float(t), dtype=parameter.dtype, device=parameter.device)
        jac = torch.func.jacrev(lambda x, time=time: net(x[None], time)[0])(centre).detach().double().cpu()
        rows.append({"t": float(t), "radial": float(jac.trace()) / 2, "rotation": float(jac[1, 0] - jac[0, 1]) / 2})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RotationResult:
    """The 180-degree example, exact fields and trained networks, from the n training sources.

    Attributes:
        x0: (n, 2) sources; paired: (n, 2) their targets 5 - x0; ot_image: (n, 2) x0 + 5.
        exact: run name -> :class:`SolverStudy` of the closed-form optimal field (the pair field at sigma 0).
        learned: run name (``"sigma=0.05 constant"``) -> :class:`SolverStudy` of the trained network.
        sigmas: run name -> (sigma, schedule).
        ts: (K + 1,) the grid of ``trajectories``; trajectories: run name -> (K + 1, n, 2) Euler trajectories.
        winding: run name -> (n,) :func:`winding_angles`.
        jacobian: one row per (run, t) of :func:`near_half`, column ``run``.
        models: run name -> the trained model.
    """

    x0: Tensor
    paired: Tensor
    ot_image: Tensor
    exact: dict[str, SolverStudy]
    learned: dict[str, SolverStudy]
    sigmas: dict[str, tuple[float, str]]
    ts: Tensor
    trajectories: dict[str, Tensor]
    winding: dict[str, Tensor]
    jacobian: pd.DataFrame
    models: dict[str, TrainedModel]


def run_name(sigma: float, schedule: str) -> str:
    """How a run is named in the tables: ``sigma=0`` or ``sigma=0.05 constant``."""
    return "sigma=0" if sigma == 0 else f"sigma={sigma:g} {schedule}"


def rotation_experiment(
    n: int,
    runs: Sequence[tuple[float, str]],
    recipe: Recipe,
    *,
    shift: float = 5.0,
    steps: Sequence[int] = (99, 100),
    methods: Sequence[str] = ("euler", "rk4"),
    adaptive: Sequence[str] = ("RK45",),
    trajectory_steps: int = 199,
    seed: int = 0,
) -> RotationResult:
    """Train the MLP on n pairs (x0, 5 - x0) for each (sigma, schedule) of ``runs``; integrate the exact and
    the learned fields from the sources with every solver (:func:`solver_study`); trajectories on a fine
    Euler grid; winding angles; the network's Jacobian near t = 1/2."""
    n = check_positive_int(n, "n")
    transport = rotation_shift_map(2, shift)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    paired, ot_image = transport(x0), x0 + shift
    options = {"steps": steps, "methods": methods, "adaptive": adaptive}
    exact = {run_name(s, sch): solver_study(AffinePairField(transport, sigma=s, schedule=sch), x0, paired, ot_image,
                                            **options) for s, sch in runs}
    grid = time_grid(check_positive_int(trajectory_steps, "trajectory_steps"))
    learned, trajectories, winding, models, sigmas, jac = {}, {}, {}, {}, {}, []
    near = np.concatenate([np.linspace(0.3, 0.7, 41), [0.0, 1.0]])
    for sigma, schedule in runs:
        name = run_name(sigma, schedule)
        sigmas[name] = (sigma, schedule)
        models[name] = model = recipe.train(x0, paired, sigma, schedule)
        net_field = model.field()
        learned[name] = solver_study(net_field, x0.float(), paired.float(), ot_image.float(), **options)
        device = next(model.ema.parameters()).device
        path = integrate(net_field, x0.float().to(device), grid, method="euler", return_trajectory=True).trajectory
        trajectories[name] = path.cpu()
        winding[name] = winding_angles(trajectories[name], grid, shift)
        jac.append(near_half(model, sorted(near), shift).assign(run=name))
    return RotationResult(x0=x0, paired=paired, ot_image=ot_image, exact=exact, learned=learned, sigmas=sigmas,
                          ts=grid, trajectories=trajectories, winding=winding, jacobian=pd.concat(jac), models=models)


# --------------------------------------------------------------------------------------------
# 3. Shuffled OT pairs


@dataclass(frozen=True)
class ShuffledResult:
    """Shuffled OT pairs of one data set, trained at each sigma.

    Attributes:
        name: ``"gaussian"`` or ``"digits"``; pairs: the :class:`fmlib.couplings.ShuffledPairs`.
        distances: sigma -> :class:`EndpointDistances` of the endpoints from the training sources
            (paired = the shuffled partner, OT = the OT partner).
        endpoints: sigma -> (n, d) endpoints. models: sigma -> trained model.
    """

    name: str
    pairs: ShuffledPairs
    distances: dict[float, EndpointDistances]
    endpoints: dict[float, Tensor]
    models: dict[float, TrainedModel]


def shuffled_experiment(
    name: str, n: int, sigmas: Sequence[float], recipe: Recipe, *, sample_steps: int = 99, seed: int = 0
) -> ShuffledResult:
    """OT pairs shuffled, trained at each sigma (constant schedule); endpoints from the training sources.

    ``"gaussian"``: sources N(0, I_2), OT partners T(x0) of :func:`gaussian_problem` (d = 2).
    ``"digits"``: sources N(0, I_64), OT partners the n digits (:func:`fmlib.data.make_digits`)
    assigned to the sources by exact OT (:func:`fmlib.couplings.minibatch_ot` on the whole set).
    """
    name = check_choice(name, ("gaussian", "digits"), "name")
    n = check_positive_int(n, "n")
    g = torch.Generator().manual_seed(seed)
    if name == "gaussian":
        x0 = torch.randn(n, 2, generator=g, dtype=torch.float64).float()
        partner = gaussian_problem(2, seed=seed)["OT"](x0.double()).float()
    else:
        digits = make_digits(n, generator=g, device="cpu")
        x0 = torch.randn(n, 64, generator=g, dtype=torch.float64).float()
        partner = minibatch_ot(x0, digits)
    pairs = shuffled_ot_pairs(x0, partner, generator=g)
    distances, endpoints, models = {}, {}, {}
    for sigma in sigmas:
        models[sigma] = model = recipe.train(pairs.x0, pairs.x1, sigma)
        endpoints[sigma] = _endpoints(model, pairs.x0, sample_steps)
        distances[sigma] = endpoint_distances(endpoints[sigma], pairs.x1, pairs.ot_partner)
    return ShuffledResult(name=name, pairs=pairs, distances=distances, endpoints=endpoints, models=models)


# --------------------------------------------------------------------------------------------
# 4. Gaussian mixtures: MMD to held-out data and to the training targets


@dataclass(frozen=True)
class MixtureResult:
    """Gaussian-mixture pairs trained at each sigma, in each d.

    Attributes:
        table: one row per (d, sigma): ``mmd_held_out`` (unbiased MMD^2, :func:`fmlib.generalisation.mmd`,
            of endpoints integrated from FRESH noise against a held-out sample: two independent samples),
            ``mmd_spread`` (:func:`fmlib.generalisation.mmd_spread` of the training targets and the held-out
            sample: the noise of such an estimate when there is no difference), ``mmd_train``
            (:func:`fmlib.generalisation.mmd_to_training_set` of the
            fresh endpoints: their law against the training set), ``mmd_train_new`` (the same for the held-out
            points: new data, the value of a model that generalises perfectly), ``to_pair`` (mean distance of
            an endpoint from a training source to its own target), ``nearest_ratio`` (median distance of the
            endpoints from the training sources to the nearest training target over that of held-out points,
            :func:`fmlib.generalisation.distance_to_training`: well below 1 when the training set is copied,
            whatever the pairing), ``nearest_ratio_fresh`` (the same for the endpoints from fresh noise: well
            above 1 when the network has learned its map only near the training sources), ``bandwidth``.
        pairing: how the pairs were formed.
    """

    table: pd.DataFrame
    pairing: str


def mixture_experiment(
    dims: Sequence[int],
    n: int,
    n_test: int,
    sigmas: Sequence[float],
    recipe: Recipe,
    *,
    pairing: str = "random",
    sample_steps: int = 99,
    seed: int = 0,
) -> MixtureResult:
    """Fixed pairs of N(0, I_d) sources and a Gaussian mixture (:func:`fmlib.data.make_gaussian_mixture`, 8
    components); ``pairing`` ``"random"`` (as drawn) or ``"ot"`` (exact OT assignment of the n points).

    The MMDs (one bandwidth per d: the median heuristic on the held-out sample against the training
    targets) use ``n_test`` endpoints from fresh noise (sources not among the training ones): endpoints
    from the training sources depend on their own paired targets, which breaks the independence the
    unbiased estimator assumes. The distances to the own target and to the nearest training target use
    the endpoints from the training sources."""
    pairing = check_choice(pairing, ("random", "ot"), "pairing")
    n, n_test = check_positive_int(n, "n"), check_positive_int(n_test, "n_test")
    rows = []
    for d in dims:
        g = torch.Generator().manual_seed(seed + d)
        data = make_gaussian_mixture(n + n_test, d=d, generator=g, device="cpu")
        train, held_out = data[:n], data[n:]
        x0 = torch.randn(n, d, generator=g, dtype=torch.float64).float()
        fresh = torch.randn(n_test, d, generator=g, dtype=torch.float64).float()  # after x0: the pairs are unchanged
        x1 = minibatch_ot(x0, train) if pairing == "ot" else train
        h = mmd(held_out, x1).bandwidth
        spread = mmd_spread(held_out, x1, bandwidth=h, seed=seed + d)
        new = mmd_to_training_set(held_out, x1, bandwidth=h)
        for sigma in sigmas:
            model = recipe.train(x0, x1, sigma)
            x, y = _endpoints(model, x0, sample_steps), _endpoints(model, fresh, sample_steps)
            rows.append({"d": d, "sigma": sigma, "mmd_held_out": mmd(y, held_out, bandwidth=h).mmd2,
                         "mmd_spread": spread, "mmd_train": mmd_to_training_set(y, x1, bandwidth=h),
                         "mmd_train_new": new, "to_pair": float((x - x1).norm(dim=1).mean()),
                         "nearest_ratio": distance_to_training(x, x1, held_out).ratio,
                         "nearest_ratio_fresh": distance_to_training(y, x1, held_out).ratio, "bandwidth": h})
    return MixtureResult(table=pd.DataFrame(rows), pairing=pairing)


# --------------------------------------------------------------------------------------------
# Sentences of the chapter that depend on the numbers (so the prose follows the run)


def largest_radial_rate(result: RotationResult, low: float = 0.3, high: float = 0.7) -> float:
    """The largest absolute radial rate of any network at the moving centre, over t in [low, high]."""
    jac = result.jacobian
    inner = jac[(jac["t"] >= low) & (jac["t"] <= high)]
    return float(inner["radial"].abs().max())


_SIDE_COLOURS = {1: "C3", -1: "C2", 0: "0.6"}
"""Trajectory colour by :func:`endpoint_sides`: that of the paired targets (C3), that of the OT images (C2), grey."""


def endpoint_sides(x: Tensor, paired: Tensor, ot_partner: Tensor, *, margin: float = 2.0) -> Tensor:
    """Per endpoint of x (B, d): 1 if at least ``margin`` times closer to its paired target than to its OT partner,
    -1 for the reverse, 0 otherwise (or not finite): the classes counted by :func:`endpoint_distances`."""
    x = check_batch(x, "x")
    return _sides((x - paired.to(x)).norm(dim=1), (x - ot_partner.to(x)).norm(dim=1), margin)


def figure_rotation(result: RotationResult, sigma: float, *, shown: int = 40) -> Figure:
    r"""Trajectories of every network of the 180-degree example (one panel per run), and their radial rates.

    Top row: the first ``shown`` Euler trajectories of each run (:attr:`RotationResult.trajectories`),
    with the paired targets :math:`5 - x_0` and the OT images :math:`x_0 + 5`; each trajectory coloured by
    where it ends (:func:`endpoint_sides`: C3 nearer its pair, C2 nearer its OT image, grey neither).
    Bottom: the radial rate at the moving centre of each network against t on [0.2, 0.8], beside the pair field's
    :math:`-2/(1 - 2t)` and the noisy optimum's :math:`-2b/(b^2 + \sigma^2)`, :math:`b = 1 - 2t`
    (constant schedule).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(result.trajectories)
    fig = plt.figure(figsize=(4.0 * len(names), 7.4))
    grid = fig.add_gridspec(2, len(names), height_ratios=(1.0, 0.8), hspace=0.35, wspace=0.3)
    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[0, k])
        path = result.trajectories[name].numpy()
        ends = endpoint_sides(result.trajectories[name][-1], result.paired, result.ot_image)
        for b in range(min(path.shape[1], shown)):
            ax.plot(path[:, b, 0], path[:, b, 1], lw=0.7, color=_SIDE_COLOURS[int(ends[b])], alpha=0.7)
        ax.scatter(*result.paired[:shown].T.numpy(), s=10, color="C3", label="paired target 5 - x0", zorder=3)
        ax.scatter(*result.ot_image[:shown].T.numpy(), s=14, color="C2", marker="x", label="OT image x0 + 5",
                   zorder=3)
        ax.set(title=f"network, {name}", aspect="equal", xlabel="first coordinate of x_t")
        if k == 0:
            ax.set_ylabel("second coordinate of x_t")
            handles, _ = ax.get_legend_handles_labels()
            handles += [Line2D([], [], color=colour, lw=1.2, label=label) for colour, label in zip(
                _SIDE_COLOURS.values(), ("trajectory ends >= 2x nearer its pair",
                                         "trajectory ends >= 2x nearer its OT image",
                                         "trajectory ends near neither (within 2x)"), strict=True)]
            fig.legend(handles=handles, fontsize=9, loc="upper center", ncol=3, frameon=False)
    ax = fig.add_subplot(grid[1, :])
    for name, group in result.jacobian.groupby("run", sort=False):
        inner = group[(group["t"] > 0.2) & (group["t"] < 0.8)]
        ax.plot(inner["t"], inner["radial"], marker=".", label=f"network, {name}")
    t = np.linspace(0.3, 0.7, 400)  # no point at 1/2, where the pair field is infinite
    ax.plot(t, np.where(np.abs(1 - 2 * t) < 0.02, np.nan, -2 / (1 - 2 * t)), "k--", lw=1,
            label="pair field -2/(1-2t)")
    b = 1 - 2 * t
    ax.plot(t, -2 * b / (b**2 + sigma**2), "k:", lw=1, label=f"noisy optimum, sigma={sigma:g}")
    ax.set(xlabel="t", ylabel="radial rate tr J / 2 at the centre", ylim=(-40, 40))
    ax.legend(fontsize=9, loc="lower right")
    fig.subplots_adjust(top=0.9, bottom=0.07)
    return fig


def rotation_summary(result: RotationResult, sigma: float, *, turned: float = 0.5) -> str:
    """What the networks of the 180-degree example learned, from the winding angles and the endpoints.

    A network learned *the pairing* when at least ``turned`` of its trajectories wind more than a
    quarter turn around the centre (the pair field's half turn); *the bounce* when they do not and
    most endpoints (median over solvers) end at least twice as close to the OT image as to the pair;
    *neither map* otherwise (e.g. a network that learned nothing leaves its sources where they are).
    """
    parts, learned_by = [], {}
    for name, angles in result.winding.items():
        if float((angles.abs() > math.pi / 2).double().mean()) >= turned:
            learned_by[name] = "the pairing (a half turn around the centre)"
        elif name in result.learned and float(result.learned[name].table["closer_to_ot"].median()) >= 0.5:
            learned_by[name] = ("the bounce (no half turn around the centre, and most endpoints at least twice as "
                                "close to the OT image as to the pair)")
        else:
            learned_by[name] = "neither map (most sources end near neither their pair nor their OT image)"
        parts.append(f"the network at {name.replace('sigma=', 'sigma = ')} learned {learned_by[name]}")
    tail = ("memorising the crossing pairs is what optimisation found at sigma = 0"
            if learned_by["sigma=0"].startswith("the pairing") else
            "with this training budget, memorising the crossing pairs is not what optimisation found")
    return "By this criterion " + "; ".join(parts) + f": {tail}."


def shuffled_summary(results: Mapping[str, ShuffledResult], sigma: float, *, change: float = 0.25) -> str:
    """Per data set: did the network memorise the shuffled pairs at sigma = 0, and did ``sigma`` change that?"""
    sentences = []
    for name, r in results.items():
        before, after = r.distances[0.0].closer_to_pair, r.distances[sigma].closer_to_pair
        state = ("memorised the shuffled pairs" if before >= 0.5 else "went to the OT partners"
                 if r.distances[0.0].closer_to_ot >= 0.5 else "went to neither partner (for most sources)")
        effect = ("and the noise moved it toward the OT partners" if before - after >= change else
                  "and the noise changed little" if abs(before - after) < change else
                  "and the noise moved it toward the shuffled partners")
        sentences.append(f"on {name}, the network at sigma = 0 {state} {effect}")
    text = "; ".join(sentences)
    return text[:1].upper() + text[1:] + "."


def noise_summary(experiments: Mapping[str, Mapping[float, EndpointDistances]], sigma: float) -> str:
    """Where the networks went to the OT partners already at sigma = 0, where only at ``sigma``, where not even then."""
    early = [n for n, runs in experiments.items() if runs[0.0].closer_to_ot >= 0.5]
    stuck = [n for n, runs in experiments.items() if runs[sigma].closer_to_ot < 0.5]
    moved = [n for n, runs in experiments.items() if n not in early and n not in stuck]
    parts = []
    if early:
        parts.append("already at sigma = 0 the networks went to the OT partners in " + ", ".join(early))
    if stuck:
        parts.append(f"at sigma = {sigma:g} most did not go to the OT partners in " + ", ".join(stuck))
    if moved:
        parts.append("the noise moved them to the OT partners in " + ", ".join(moved))
    return "In our runs " + "; ".join(parts) + "."


def mixture_summary(result: MixtureResult, sigma: float, *, below: float = 10.0) -> str:
    """Our MMDs against their noise and against new data, and whether our pattern is the summary's.

    The summary's pattern: at both sigma, the MMD to the training pairs lies orders of magnitude below
    the MMD to held-out data, and noise raises the former. Ours matches the first part in a d when our
    MMD^2 to the training set is at least ``below`` times smaller than our MMD^2 to held-out data (or
    negative) at both sigma (a held-out MMD^2 within two spreads of 0 is no difference at all, and nothing can
    lie an order of magnitude below it); the second when the MMD^2 to the training set rises with noise
    by more than two spreads.
    """
    table = result.table.set_index(["d", "sigma"])
    parts, first, second = [], [], []
    for d in sorted({int(k[0]) for k in table.index}):
        clean, noisy = table.loc[(d, 0.0)], table.loc[(d, sigma)]
        spread = float(clean["mmd_spread"])
        resolved = [abs(float(r["mmd_held_out"])) > 2 * spread for r in (clean, noisy)]
        parts.append(f"in d = {d}, MMD2 of the endpoints from fresh noise to held-out data {clean['mmd_held_out']:.1e} "
                     f"at sigma = 0 and {noisy['mmd_held_out']:.1e} at sigma = {sigma:g} (spread of such an estimate "
                     f"between two samples of the mixture {spread:.1e}: "
                     + ("both resolved" if all(resolved) else "resolved at sigma = 0 only" if resolved[0] else
                        f"resolved at sigma = {sigma:g} only" if resolved[1] else "neither resolved")
                     + f"), and to the training set {clean['mmd_train']:.1e} and {noisy['mmd_train']:.1e}, against "
                     f"{clean['mmd_train_new']:.1e} for the held-out points; an endpoint from a training source lies "
                     f"on average {clean['to_pair']:.2f} (sigma = 0) and {noisy['to_pair']:.2f} (sigma = {sigma:g}) "
                     f"from its own target, and these endpoints are {clean['nearest_ratio']:.2f} and "
                     f"{noisy['nearest_ratio']:.2f} times as far from the nearest training target as held-out "
                     f"points are ({clean['nearest_ratio_fresh']:.2f} and {noisy['nearest_ratio_fresh']:.2f} for the "
                     "endpoints from fresh noise)")
        first.append(all(below * float(r["mmd_train"]) <= float(r["mmd_held_out"]) > 2 * spread
                         for r in (clean, noisy)))
        second.append(float(noisy["mmd_train"]) - float(clean["mmd_train"]) > 2 * spread)

    def verdict(flags: list[bool]) -> str:
        return "it holds in every d" if all(flags) else "it holds in no d" if not any(flags) else "it holds in some d"

    return ("Ours: " + "; ".join(parts) + ". Against the summary's pattern: MMD to the training pairs at least "
            f"{below:g} times below the MMD to held-out data at both sigma: {verdict(first)}; noise raises the MMD "
            f"to the training set by more than two spreads: {verdict(second)}. A model that memorises its pairs "
            "puts the distance to its own target near 0; one that copies the training set, whatever the pairs, "
            "puts the MMD2 to the training set near 0, below the held-out points' value, and the nearest-distance "
            "ratio well below 1.")
