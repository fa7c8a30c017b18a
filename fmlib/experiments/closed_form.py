r"""What chapter 1 (``notebooks/01_closed_form.md``) computes, and the verdict rules of its four claims.

Convention (``shared/notes/closed_form.md``): :math:`x_t = (1 - t) x_0 + t x_1`, :math:`x_0 \sim N(0, I_d)`,
:math:`x_1` uniform over the training points :math:`y_1, \dots, y_n`, and

.. math::

    u^*(x, t) = \frac{D(x, t) - x}{1 - t}, \qquad D(x, t) = \sum_i \lambda_i(x, t)\, y_i, \qquad
    \lambda_i(x, t) = \operatorname{softmax}_i\Big(-\frac{\|x - t y_i\|^2}{2 (1 - t)^2}\Big).

Four claims, four checks; each check takes the field (and, for the ODE checks, the solvers of
:data:`fmlib.ode.SOLVERS`) as an input, so that a test can hand it a wrong one:

- ``closed-form`` (identity): :func:`bayes_check` against a brute-force posterior; rule :func:`closed_form_finding`.
- ``cfm-minimiser`` (a theorem, checked by Monte Carlo): :func:`cfm_experiment`; rule :func:`cfm_minimiser_finding`.
- ``memorisation``: :func:`memorisation_experiment`; rule :func:`memorisation_finding` (an identity part
  that stops the run, two empirical parts that set the verdict).
- ``span`` (identity): :func:`span_experiment`; rule :func:`span_finding`.

Identities stop the run with :class:`~fmlib.experiments.verdicts.ClaimBroken` naming the claim;
statistical checks return a :class:`~fmlib.experiments.verdicts.Finding`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scipy import stats
from scipy.special import logsumexp
from torch import Tensor
from tqdm import tqdm

from fmlib._checks import FloatArray, check_batch, check_data, check_float, check_positive_int, check_times
from fmlib.closed_form import ClosedFormField
from fmlib.experiments.verdicts import Finding, Verdict, graded, require
from fmlib.metrics import off_span, off_span_trajectories
from fmlib.neighbours import nearest_neighbor_distance
from fmlib.ode import SOLVERS, integrate, time_grid
from fmlib.osdnet import span_basis
from fmlib.path import draw_pairs, interpolate
from fmlib.plots import colorbar, legend_outside

__all__ = [
    "DIRECTIONS",
    "FIELD_ARROW_LENGTH",
    "FIELD_COLOURS",
    "TRAJECTORIES_SHOWN",
    "BayesCheck",
    "CFMCheck",
    "Memorisation",
    "SpanCheck",
    "TemperedField",
    "bayes_check",
    "cfm_experiment",
    "cfm_minimiser_finding",
    "closed_form_finding",
    "comparison_fields",
    "figure_cfm",
    "figure_field_2d",
    "figure_path_1d",
    "figure_segments",
    "figure_trajectories",
    "memorisation_experiment",
    "memorisation_finding",
    "span_experiment",
    "span_finding",
]

Velocity = Callable[[Tensor, Tensor], Tensor]
"""A velocity v(x, t): x (B, d), t (B,) tensor, result (B, d)."""

Direction = Callable[[Tensor, Tensor, Tensor], Tensor]
"""A perturbation direction h(x, t, v): x (B, d), t (B,), v (B, d) the field's value there; result (B, d)."""


def _column(t: float | Tensor, x: Tensor) -> Tensor | float:
    """``t`` broadcastable against (B, d) rows: a float stays a float, a (B,) tensor becomes (B, 1)."""
    return t.reshape(-1, 1).to(x) if isinstance(t, Tensor) else float(t)


# --- a field at any temperature -----------------------------------------------------------------------


class TemperedField:
    r"""The closed form with its logits divided by :math:`(1 - t)^p` instead of :math:`(1 - t)^2`.

    .. math::

        \lambda^{(p)}_i(x, t) = \operatorname{softmax}_i\Big(-\frac{\|x - t y_i\|^2}{2 (1 - t)^p}\Big), \qquad
        v^{(p)}(x, t) = \frac{\sum_i \lambda^{(p)}_i y_i - x}{1 - t}.

    p = 2 is :math:`u^*`; p = 1 is the "mistempered" field of chapter 1 (the weights of the wrong
    noise level): a field that still points at convex combinations of the data, so it keeps the span
    but not the law of the endpoints. Brute force (a (B, n, d) difference): for small n only.

    Args:
        data: (n, d) training points.
        power: p > 0.
    """

    def __init__(self, data: Tensor, power: float) -> None:
        self.data = check_data(data)
        self.power = check_float(power, "power", low=0.0, low_open=True)

    def weights(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The weights (B, n), rows summing to 1; t < 1."""
        tc = _column(t, x)
        diff = x.unsqueeze(1) - (tc.unsqueeze(-1) if isinstance(tc, Tensor) else tc) * self.data.unsqueeze(0)
        return torch.softmax(-(diff**2).sum(-1) / (2 * (1 - tc) ** self.power), dim=1)

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        """:math:`\\sum_i \\lambda^{(p)}_i y_i`, (B, d); t < 1."""
        return self.weights(x, t) @ self.data

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        """:math:`v^{(p)}(x, t)`, (B, d); t < 1."""
        return (self.posterior_mean(x, t) - x) / (1 - _column(t, x))


# --- (a) the Bayes posterior, by brute force --------------------------------------------------------------


@dataclass(frozen=True)
class BayesCheck:
    """Largest differences between a field and the brute-force Bayes posterior at ``n_queries`` points at time ``t``."""

    t: float
    n_queries: int
    weights_error: float
    velocity_error: float


def bayes_check(field: object, data: Tensor, t: float, n_queries: int, *,
                generator: torch.Generator | None = None) -> BayesCheck:
    r"""Compare ``field.weights`` and ``field.velocity`` with the posterior computed the slow way.

    Query points :math:`x = t y_I + (1 - t) z` (I uniform, z ~ N(0, I)); the reference is
    :math:`P(x_1 = y_i \mid x_t = x) \propto N(x; t y_i, (1 - t)^2 I)` with its normalising constant, from
    explicit differences, normalised by ``scipy.special.logsumexp`` in float64 NumPy: no code shared
    with :mod:`fmlib.closed_form`.

    Args:
        field: the field under test (``weights(x, t)`` (B, n), ``velocity(x, t)`` (B, d)).
        data: (n, d) training points.
        t: the time, in (0, 1).
        n_queries: number of query points.
        generator: CPU generator for the draws.
    """
    check_data(data)
    t = check_float(t, "t", low=0.0, high=1.0, low_open=True, high_open=True)
    n_queries = check_positive_int(n_queries, "n_queries")
    z, y_q = draw_pairs(data.cpu().double(), n_queries, generator=generator)
    x_q = interpolate(z, y_q, t)
    y_np, x_np, var = data.cpu().double().numpy(), x_q.numpy(), (1 - t) ** 2
    log_lik = (-((x_np[:, None, :] - t * y_np[None]) ** 2).sum(-1) / (2 * var)
               - 0.5 * y_np.shape[1] * np.log(2 * np.pi * var))
    posterior = np.exp(log_lik - logsumexp(log_lik, axis=1, keepdims=True))
    bayes_velocity = (posterior @ y_np - x_np) / (1 - t)
    x_dev = x_q.to(device=data.device, dtype=data.dtype)
    weights = field.weights(x_dev, t).double().cpu().numpy()
    velocity = field.velocity(x_dev, t).double().cpu().numpy()
    return BayesCheck(t=t, n_queries=n_queries, weights_error=float(np.abs(weights - posterior).max()),
                      velocity_error=float(np.abs(velocity - bayes_velocity).max()))


def closed_form_finding(check: BayesCheck, *, weights_tol: float = 1e-12, velocity_tol: float = 1e-10) -> Finding:
    """Rule of ``closed-form`` (an identity): stop unless both errors are float64 round-off.

    ClaimBroken("closed-form") when ``weights_error >= weights_tol`` or ``velocity_error >= velocity_tol``
    (float64 data; the defaults leave room for round-off of logits of size ~1/(1 - t)^2); otherwise
    REPRODUCED.
    """
    require(check.weights_error < weights_tol and check.velocity_error < velocity_tol, "closed-form",
            f"the field differs from the brute-force Bayes posterior at t = {check.t}: weights by "
            f"{check.weights_error:.2e} (tolerance {weights_tol:.0e}), velocity by {check.velocity_error:.2e} "
            f"(tolerance {velocity_tol:.0e})")
    return Finding("closed-form", Verdict.REPRODUCED,
                   f"max |u* - brute-force Bayes| = {check.velocity_error:.1e} over {check.n_queries} points",
                   f"identity: weights within {weights_tol:.0e} and velocity within {velocity_tol:.0e} of the "
                   "brute-force posterior (float64), else the run stops")


# --- (b) the CFM minimiser, with pairs drawn jointly --------------------------------------------------------

DIRECTIONS: dict[str, Direction] = {
    "constant e_1": lambda x, t, v: torch.nn.functional.one_hot(torch.zeros(x.shape[0], dtype=torch.long),
                                                                x.shape[1]).to(x),
    "position x": lambda x, t, v: x,
    "the field itself": lambda x, t, v: v,
}
"""Perturbation directions h of :func:`cfm_experiment`: a constant, the position, and the field (a rescaling)."""


def comparison_fields(data: Tensor) -> dict[str, Velocity]:
    r"""Other fields v for the constant gap :math:`L_{CFM}(v) - L_{FM}(v)`: zero, toward the mean, mistempered.

    ``zero``: v = 0; ``toward the data mean``: :math:`\bar y - x` (:math:`u^*(x, 0)` at every t);
    ``temperature 1/(1-t)``: :class:`TemperedField` with p = 1.
    """
    mean = data.mean(dim=0)
    return {
        "zero": lambda x, t: torch.zeros_like(x),
        "toward the data mean": lambda x, t: mean - x,
        "temperature 1/(1-t)": TemperedField(data, power=1.0).velocity,
    }


class _Moments:
    """Running sums of a per-sample quantity (any shape per sample): mean and standard error."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: Tensor) -> None:
        values = values.double().cpu()
        self.count += values.shape[0]
        self.total = self.total + values.sum(0).numpy()
        self.squares = self.squares + (values**2).sum(0).numpy()

    def mean(self) -> FloatArray:
        return np.asarray(self.total / self.count)

    def standard_error(self) -> FloatArray:
        var = np.maximum(self.squares / self.count - self.mean() ** 2, 0.0) * self.count / max(self.count - 1, 1)
        return np.sqrt(var / self.count)


@dataclass(frozen=True)
class CFMCheck:
    r"""Monte-Carlo estimates of the CFM loss around a candidate field w, from M pairs drawn jointly.

    Directions (rows ``directions``), step sizes ``eps``:

    Attributes:
        n_pairs: M.
        loss: (H, E) :math:`\hat L_{CFM}(w + \varepsilon h)`; ``loss_se`` its standard error.
        parabola: (H, E) :math:`\hat L_{CFM}(w) + \varepsilon^2 \widehat{E\|h\|^2}`.
        cross: (H,) :math:`\hat C_h = \overline{\langle w - (x_1 - x_0), h \rangle}`; ``cross_se`` its standard error.
            :math:`\hat L(\varepsilon) - \text{parabola} = 2 \varepsilon \hat C_h` (same pairs for every eps).
        h_norm2: (H,) :math:`\widehat{E\|h\|^2}`.
        fields: names of the comparison fields v (the candidate first, as ``"candidate"``).
        cfm, fm: (F,) :math:`\hat L_{CFM}(v)` and :math:`\hat L_{FM}(v) = \overline{\|v - w\|^2}`.
        gap_change, gap_change_se: (F,) :math:`(\hat L_{CFM} - \hat L_{FM})(v) - (\hat L_{CFM} - \hat L_{FM})(w)
            = 2\, \overline{\langle v - w, w - (x_1 - x_0)\rangle}` and its standard error (0 for w itself).
    """

    n_pairs: int
    directions: tuple[str, ...]
    eps: FloatArray
    loss: FloatArray
    loss_se: FloatArray
    parabola: FloatArray
    cross: FloatArray
    cross_se: FloatArray
    h_norm2: FloatArray
    fields: tuple[str, ...]
    cfm: FloatArray
    fm: FloatArray
    gap_change: FloatArray
    gap_change_se: FloatArray

    def minimum_table(self) -> pd.DataFrame:
        """One row per direction: E||h||^2, the fitted minimiser eps* = -C/E||h||^2 and its standard error."""
        return pd.DataFrame({"direction h": self.directions, "E||h||^2": self.h_norm2,
                             "minimiser eps*": -self.cross / self.h_norm2,
                             "its standard error": self.cross_se / self.h_norm2,
                             "z = C / se(C)": _ratio(self.cross, self.cross_se)})

    def gap_table(self) -> pd.DataFrame:
        """One row per field: L_CFM, L_FM, their difference, and its change from the candidate's with its error."""
        return pd.DataFrame({"field v": self.fields, "L_CFM(v)": self.cfm, "L_FM(v)": self.fm,
                             "L_CFM - L_FM": self.cfm - self.fm, "change from u*": self.gap_change,
                             "its standard error": self.gap_change_se})

    def z_scores(self) -> tuple[FloatArray, FloatArray]:
        """(H,) z of the cross terms and (F - 1,) z of the gap changes (the candidate's own row left out).

        A zero standard error (a direction or field that is zero on every draw) gives z = 0 for a zero
        estimate and infinity otherwise.
        """
        return _ratio(self.cross, self.cross_se), _ratio(self.gap_change[1:], self.gap_change_se[1:])


def cfm_experiment(candidate: Velocity, data: Tensor, n_pairs: int, eps: Sequence[float], *,
                   directions: Mapping[str, Direction] = DIRECTIONS,
                   others: Mapping[str, Velocity] | None = None,
                   generator: torch.Generator | None = None, chunk: int = 1 << 15,
                   progress: bool = False) -> CFMCheck:
    r"""Estimate :math:`L_{CFM}` around a candidate field w, with :math:`x_0, x_1, t` drawn jointly.

    .. math::

        L_{CFM}(v) = E_{t \sim U(0, 1),\, x_0 \sim N(0, I),\, x_1}\, \|v(x_t, t) - (x_1 - x_0)\|^2, \qquad
        L_{CFM}(w + \varepsilon h) = L_{CFM}(w) + 2 \varepsilon\, E\langle w - (x_1 - x_0), h\rangle
        + \varepsilon^2 E\|h\|^2 .

    If w = u* = E[x_1 - x_0 | x_t], the middle term vanishes for every h: the minimum is at
    :math:`\varepsilon = 0` and the curve is :math:`L_{CFM}(u^*) + \varepsilon^2 E\|h\|^2`; and
    :math:`L_{CFM}(v) - L_{FM}(v) = L_{CFM}(u^*)` for every v, with :math:`L_{FM}(v) = E\|v - u^*\|^2`
    (Lipman et al. 2023; restated by Bertrand et al. 2025). Every quantity is a mean over the same M
    pairs (common random numbers), streamed in chunks; standard errors from the per-pair values.

    Args:
        candidate: the field w claimed to be u*: ``candidate(x, t)`` with x (B, d), t (B,).
        data: (n, d) training points.
        n_pairs: M, the number of joint draws (t, x0, x1).
        eps: step sizes along each direction.
        directions: name -> h(x, t, w(x, t)), (B, d) (default :data:`DIRECTIONS`).
        others: name -> field v for the constant-gap check (default :func:`comparison_fields`).
        generator: generator for the draws (its device, else the CPU).
        chunk: pairs per chunk, lowered so that a (chunk, n, d) block (the brute-force
            :class:`TemperedField` among the default fields) holds at most 2^24 entries.
        progress: show a tqdm bar over the chunks.
    """
    check_data(data)
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    chunk = max(1, min(check_positive_int(chunk, "chunk"), (1 << 24) // (data.shape[0] * data.shape[1])))
    eps_arr = np.asarray([check_float(e, "eps") for e in eps], dtype=np.float64)
    if eps_arr.size == 0 or not np.any(eps_arr == 0):
        raise ValueError(f"eps must list the step sizes and include 0 (the candidate itself), got {list(eps)!r}")
    others = comparison_fields(data) if others is None else others
    names = tuple(directions)
    loss, cross, h2, cfm, fm, gap = (_Moments() for _ in range(6))
    for start in tqdm(range(0, n_pairs, chunk), desc="CFM pairs", disable=not progress):
        size = min(chunk, n_pairs - start)
        x0, x1 = draw_pairs(data, size, generator=generator)
        t = torch.rand(size, generator=generator, dtype=torch.float64,
                       device=generator.device if generator is not None else "cpu").to(data.device, data.dtype)
        x_t, target = interpolate(x0, x1, t), x1 - x0
        w = candidate(x_t, t)
        residual = w - target
        hs = torch.stack([directions[name](x_t, t, w) for name in names])  # (H, B, d)
        eps_t = torch.as_tensor(eps_arr, dtype=x_t.dtype, device=x_t.device)
        perturbed = residual.unsqueeze(0).unsqueeze(0) + eps_t.reshape(1, -1, 1, 1) * hs.unsqueeze(1)
        loss.add((perturbed**2).sum(-1).permute(2, 0, 1))  # (B, H, E)
        cross.add((residual.unsqueeze(0) * hs).sum(-1).T)
        h2.add((hs**2).sum(-1).T)
        vs = torch.stack([w, *(v(x_t, t) for v in others.values())])  # (F, B, d)
        cfm.add(((vs - target) ** 2).sum(-1).T)
        fm.add(((vs - w) ** 2).sum(-1).T)
        gap.add(2 * ((vs - w) * residual.unsqueeze(0)).sum(-1).T)
    zero = int(np.flatnonzero(eps_arr == 0)[0])
    gap_se = gap.standard_error()
    return CFMCheck(
        n_pairs=n_pairs, directions=names, eps=eps_arr, loss=loss.mean(), loss_se=loss.standard_error(),
        parabola=loss.mean()[:, zero : zero + 1] + eps_arr[None, :] ** 2 * h2.mean()[:, None],
        cross=cross.mean(), cross_se=cross.standard_error(), h_norm2=h2.mean(),
        fields=("candidate", *others), cfm=cfm.mean(), fm=fm.mean(), gap_change=gap.mean(),
        gap_change_se=np.r_[0.0, gap_se[1:]],
    )


def _ratio(estimate: FloatArray, se: FloatArray) -> FloatArray:
    """estimate / se, with 0 / 0 = 0 and x / 0 = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, estimate / np.where(se > 0, se, 1.0), np.where(estimate == 0, 0.0, np.inf))


def _family_pvalue(z: FloatArray) -> float:
    """Bonferroni-corrected two-sided p-value of the largest |z| in a family of normal z-scores."""
    z = np.asarray(z, dtype=np.float64)
    return float(min(1.0, z.size * 2 * stats.norm.sf(np.abs(z).max()))) if z.size else 1.0


def cfm_minimiser_finding(check: CFMCheck, *, alpha: float = 0.01) -> Finding:
    r"""Rule of ``cfm-minimiser`` (a theorem, tested by Monte Carlo at family level ``alpha``).

    Part 1, the minimum sits at :math:`\varepsilon = 0` along every direction: the cross terms
    :math:`\hat C_h` are zero within their standard errors (two-sided, Bonferroni over the H directions,
    p >= alpha). Part 2, :math:`L_{CFM} - L_{FM}` is the same for every field: each change from the
    candidate's is zero within its standard error (Bonferroni over the fields, p >= alpha).
    REPRODUCED if both parts pass, PARTLY if one does, NOT_REPRODUCED if neither.
    """
    z_min, z_gap = check.z_scores()
    p_min, p_gap = _family_pvalue(z_min), _family_pvalue(z_gap)
    return Finding(
        "cfm-minimiser", graded(p_min >= alpha and p_gap >= alpha, p_min >= alpha or p_gap >= alpha),
        f"largest |z| of the slope at eps = 0: {np.abs(z_min).max():.1f} (family p = {p_min:.2g}); of the "
        f"change of L_CFM - L_FM across {len(z_gap)} fields: {np.abs(z_gap).max():.1f} (p = {p_gap:.2g}); "
        f"M = {check.n_pairs} pairs",
        f"the minimum at eps = 0 and the constant gap each pass when their Bonferroni p >= {alpha}: "
        "reproduced if both pass, partly if one, not reproduced if neither",
    )


# --- (c) memorisation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memorisation:
    r"""Where the trajectories of a field are before the last step, where they end, and how the ends are spread.

    Per solver (dicts keyed by method), for the B samples, measured with the exact closed form of the data:

    Attributes:
        t_last: :math:`t_K`, the start of the last (denoiser) step.
        max_weight: (B,) :math:`\max_i \lambda_i(x(t_K), t_K)`.
        residual: (B,) :math:`r = \min_i \|x(t_K) - t_K y_i\| / (1 - t_K)`: the noise that puts
            :math:`x(t_K)` on the nearest conditional path (at most :math:`\|z\|`, z ~ N(0, I_d), under
            the exact flow).
        residual_level: the level the exact flow's largest r over B samples exceeds with probability
            ``false_alarm``: :math:`\sqrt{\chi^2_d\text{-quantile}(1 - \text{false\_alarm}/B)}`.
        residual_limit: ``slack`` times that level: room for the solvers' own error (how much the
            solvers' residuals differ on one sample is :attr:`residual_spread`).
        endpoint: (B,) index of the training point nearest to x(1); ``end_distance`` (B,) the distance.
        counts: (n,) endpoints per training point; ``law_pvalue`` the chi-square p-value against the uniform law.
        agreement: fraction of samples whose endpoint is the same training point for every solver.
        trajectory: (K + 1, B, d) the trajectories of the first solver, on the CPU (for the figure).
    """

    t_last: float
    max_weight: dict[str, Tensor]
    residual: dict[str, Tensor]
    residual_level: float
    residual_limit: float
    false_alarm: float
    endpoint: dict[str, Tensor]
    end_distance: dict[str, Tensor]
    counts: dict[str, np.ndarray]
    law_pvalue: dict[str, float]
    agreement: float
    trajectory: Tensor

    @property
    def methods(self) -> tuple[str, ...]:
        """The solvers, in the order they ran."""
        return tuple(self.residual)

    @property
    def weakest_weight(self) -> float:
        """The smallest, over solvers and samples, of the largest weight at t_K."""
        return min(float(w.min()) for w in self.max_weight.values())

    @property
    def worst_residual(self) -> float:
        """The largest residual r at t_K over solvers and samples."""
        return max(float(r.max()) for r in self.residual.values())

    @property
    def residual_spread(self) -> float:
        """The largest difference, over samples, between the largest and the smallest residual of the solvers."""
        stacked = torch.stack(list(self.residual.values()))
        return float((stacked.amax(dim=0) - stacked.amin(dim=0)).max())

    @property
    def law_pvalue_corrected(self) -> float:
        """The smallest chi-square p-value over the solvers, times their number (Bonferroni), capped at 1."""
        return min(1.0, len(self.law_pvalue) * min(self.law_pvalue.values()))

    @property
    def worst_end_distance(self) -> float:
        """The largest distance from an endpoint x(1) to its nearest training point."""
        return max(float(e.max()) for e in self.end_distance.values())

    def table(self) -> pd.DataFrame:
        """One row per solver: the smallest largest-weight and the largest residual at t_K, the endpoint law.

        The p-values are each solver's own; the verdict reads :attr:`law_pvalue_corrected` (Bonferroni).
        """
        return pd.DataFrame([{
            "solver": m, "order": SOLVERS[m].order if m in SOLVERS else None,
            "min over samples of max weight at t_K": float(self.max_weight[m].min()),
            "max residual r at t_K": float(self.residual[m].max()),
            "max distance of x(1) to the data": float(self.end_distance[m].max()),
            "training points reached": int((self.counts[m] > 0).sum()),
            "chi-square p (uniform ends, uncorrected)": self.law_pvalue[m],
        } for m in self.methods])


def memorisation_experiment(field: object, data: Tensor, x0: Tensor, ts: Tensor | Sequence[float], *,
                            methods: Sequence[str] = tuple(SOLVERS), false_alarm: float = 1e-6,
                            slack: float = 2.0) -> Memorisation:
    r"""Integrate ``field`` from ``x0`` with each solver and measure landing before and after the last step.

    The last step :math:`x(1) = D(x(t_K), t_K)` puts any point on a convex combination of the data, so
    where x(1) lies says little about the field; what the field did shows at :math:`t_K`. Under the
    exact flow of :math:`u^*`, :math:`x(t) \sim \frac1n \sum_i N(t y_i, (1 - t)^2 I)` at every t (the flow
    carries N(0, I) along the probability path), so :math:`x(t_K) = t_K y_i + (1 - t_K) z` with
    z ~ N(0, I): the residual r is at most :math:`\|z\|`, and the endpoint is uniform over the data.

    Args:
        field: the field integrated (``velocity`` and ``posterior_mean``, e.g. :class:`~fmlib.ClosedFormField`).
        data: (n, d) training points: the reference for weights, residuals and endpoints.
        x0: (B, d) noise.
        ts: the solvers' grid, ending at 1.
        methods: keys of :data:`fmlib.ode.SOLVERS`.
        false_alarm: the probability that the exact flow's largest residual exceeds ``residual_level``.
        slack: ``residual_limit`` / ``residual_level`` (>= 1), room for the solvers' discretisation error.

    Memory: the residuals form a (B, n, d) difference per solver, meant for the chapter's small data.
    """
    check_data(data)
    check_batch(x0, "x0")
    grid = check_times(ts, min_points=3)
    if float(grid[-1]) != 1.0:
        raise ValueError(f"ts must end at t = 1 (the endpoints are the samples), got ts[-1]={float(grid[-1])!r}")
    if not methods:
        raise ValueError("methods must name at least one solver of fmlib.ode.SOLVERS")
    false_alarm = check_float(false_alarm, "false_alarm", low=0.0, high=1.0, low_open=True, high_open=True)
    slack = check_float(slack, "slack", low=1.0)
    reference, t_last = ClosedFormField(data), float(grid[-2])
    out: dict[str, dict] = {key: {} for key in ("w", "r", "end", "dist", "counts", "p")}
    trajectory = None
    for method in methods:
        result = integrate(field, x0, grid, method=method, return_trajectory=True)
        x_last = result.trajectory[-2]
        out["w"][method] = reference.weights(x_last, t_last).amax(dim=1).cpu()
        out["r"][method] = ((x_last.unsqueeze(1) - t_last * data.unsqueeze(0)).norm(dim=-1).amin(dim=1)
                            / (1 - t_last)).cpu()
        nearest = nearest_neighbor_distance(result.x, data)
        out["end"][method], out["dist"][method] = nearest.index.cpu(), nearest.distance.cpu()
        counts = torch.bincount(nearest.index.cpu(), minlength=data.shape[0]).numpy()
        out["counts"][method] = counts
        out["p"][method] = float(stats.chisquare(counts).pvalue) if data.shape[0] > 1 else 1.0
        trajectory = result.trajectory.cpu() if trajectory is None else trajectory
    ends = torch.stack(list(out["end"].values()))
    level = math.sqrt(stats.chi2.isf(false_alarm / x0.shape[0], data.shape[1]))
    return Memorisation(
        t_last=t_last, max_weight=out["w"], residual=out["r"], residual_level=level, residual_limit=slack * level,
        false_alarm=false_alarm, endpoint=out["end"], end_distance=out["dist"], counts=out["counts"],
        law_pvalue=out["p"], agreement=float((ends == ends[0]).all(dim=0).double().mean()), trajectory=trajectory,
    )


def memorisation_finding(m: Memorisation, *, weight_floor: float = 1 - 1e-6, agreement_floor: float = 0.95,
                         alpha: float = 0.01) -> Finding:
    r"""Rule of ``memorisation``: an identity part that stops the run, two empirical parts for the verdict.

    Identity (ClaimBroken("memorisation")): for every solver and sample, (i) the largest weight at
    :math:`t_K` is at least ``weight_floor`` (else the last step starts before the weights concentrate:
    a grid too coarse), and (ii) the residual r is below ``residual_limit`` (``slack`` times the level the
    exact flow exceeds with probability ``false_alarm``): the trajectory reached a conditional path
    before the last step.
    Empirical: (a) the fraction of samples on which every solver ends on the same training point is at
    least ``agreement_floor``; (b) the chi-square test of uniform endpoints does not reject at level
    ``alpha`` (Bonferroni over the solvers). REPRODUCED if (a) and (b), PARTLY if one, NOT_REPRODUCED if neither.
    """
    weakest, worst, p_law = m.weakest_weight, m.worst_residual, m.law_pvalue_corrected
    require(weakest >= weight_floor, "memorisation",
            f"the last step started at t_K = {m.t_last:.6f}, where some sample's largest weight is only "
            f"{weakest:.4f} (< {weight_floor}): the weights had not concentrated; use more ode_steps or "
            "spacing quadratic")
    require(worst <= m.residual_limit, "memorisation",
            f"before the last step a trajectory is {worst:.3g} noise units from every conditional path "
            f"(limit {m.residual_limit:.2f}: {m.residual_limit / m.residual_level:g} times the level "
            f"{m.residual_level:.2f} the exact flow exceeds with probability {m.false_alarm:.0e}): the field, "
            "the solver or its grid did not carry the noise to the data")
    agree, law = m.agreement >= agreement_floor, p_law >= alpha
    return Finding(
        "memorisation", graded(agree and law, agree or law),
        f"before the last step every residual <= {worst:.2f} (limit {m.residual_limit:.2f}); solvers agree on "
        f"{m.agreement:.1%} of endpoints; chi-square p of uniform endpoints {p_law:.2g}",
        f"stops unless every largest weight at t_K >= {weight_floor} and every residual <= its limit; then "
        f"reproduced if solvers agree on >= {agreement_floor:.0%} of samples and the uniform law is not rejected "
        f"(Bonferroni p >= {alpha}), partly if one of the two, not reproduced if neither",
    )


# --- (d) the span --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanCheck:
    """Per solver: the largest relative deviation of P x(t) from (1 - t) P x(0), and the largest |P x(1)|."""

    law_error: dict[str, float]
    end_norm: dict[str, float]

    @property
    def worst_law_error(self) -> float:
        """The largest relative deviation from the law over the solvers."""
        return max(self.law_error.values())

    @property
    def worst_end_norm(self) -> float:
        """The largest |P x(1)| over the solvers."""
        return max(self.end_norm.values())

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"solver": list(self.law_error),
                             "max |Px(t) - (1-t)Px(0)| / |Px(0)|": list(self.law_error.values()),
                             "max |Px(1)|": list(self.end_norm.values())})


def span_experiment(field: object, data: Tensor, x0: Tensor, ts: Tensor | Sequence[float], *,
                    methods: Sequence[str] = tuple(SOLVERS)) -> SpanCheck:
    r"""Follow the part of each trajectory orthogonal to :math:`\operatorname{span}\{y_i\}`.

    With P the projector onto the orthogonal complement of the span, :math:`P D = 0`, so under
    :math:`u^*` :math:`\frac{d}{dt} P x = -P x / (1 - t)` and :math:`P x(t) = (1 - t) P x(0)` (*reconstructed*).

    Args:
        field: the field integrated.
        data: (n, d) training points spanning a proper subspace of R^d.
        x0: (B, d) noise.
        ts: the solvers' grid.
        methods: keys of :data:`fmlib.ode.SOLVERS`.
    """
    check_data(data)
    check_batch(x0, "x0")
    basis = span_basis(data)  # (D, rank), orthonormal: one SVD, k its numerical rank
    rank = basis.shape[1]
    if rank >= data.shape[1]:
        raise ValueError(f"data must span a proper subspace (rank {rank} < dimension {data.shape[1]}); "
                         "lower the rank of the data or raise the dimension")
    law_error, end_norm = {}, {}
    for method in methods:
        law = off_span_trajectories(field, x0, ts, basis, method=method)  # the measurement chapter 5 uses too
        law_error[method] = law.law_deviation
        end_norm[method] = float(off_span(law.samples.double(), basis).norm(dim=-1).max())
    return SpanCheck(law_error=law_error, end_norm=end_norm)


SPAN_TOLERANCE = 1e-10
"""Largest relative deviation from (1 - t) P x(0) allowed: round-off. Under u* the off-span part is a straight
line in t, and every stage of a Runge-Kutta step (Euler, Heun, RK4) evaluates its slope exactly on such a line,
so the solvers of :mod:`fmlib.ode` follow the law without discretisation error."""


def span_finding(check: SpanCheck, *, tolerance: float = SPAN_TOLERANCE, end_tol: float = 1e-10) -> Finding:
    """Rule of ``span`` (an identity): stop unless every solver follows (1 - t) P x(0) within ``tolerance``.

    ClaimBroken("span") if a solver's relative law error exceeds ``tolerance`` or some |P x(1)| exceeds
    ``end_tol``; otherwise REPRODUCED. The end point is structural (any
    convex combination of the data lies in the span); the law along the way is what a wrong field breaks.
    """
    for method, error in check.law_error.items():
        require(error <= tolerance, "span", f"{method}: P x(t) deviates from (1 - t) P x(0) by {error:.2e} of "
                f"|P x(0)| (tolerance {tolerance:.0e}): the field's off-span part has the wrong sign or scale")
    end = check.worst_end_norm
    require(end <= end_tol, "span", f"a sample ends {end:.2e} off the span of the data (tolerance {end_tol:.0e})")
    return Finding("span", Verdict.REPRODUCED,
                   f"off-span law within {check.worst_law_error:.0e}; off-span part at t = 1: {end:.0e}",
                   f"identity: P x(t) = (1 - t) P x(0) within {tolerance:.0e} of |P x(0)| for every solver and "
                   f"P x(1) = 0 within {end_tol:.0e}, else the run stops")


# --- figures -------------------------------------------------------------------------------------------------


def figure_path_1d(data_1d: Tensor, ode_steps: int, spacing: str, grid_size: int) -> Figure:
    r"""The density of :math:`x_t` over (t, x) for 1-D data, with trajectories of u* (Heun) from a grid of noise."""
    y = data_1d[:, 0].double().cpu().numpy()
    ts, xs = np.linspace(0.0, 0.99, grid_size), np.linspace(-3.5, 3.5, grid_size)
    tt, xx = np.meshgrid(ts, xs)
    gap = 1 - tt[..., None]
    log_density = logsumexp(-((xx[..., None] - tt[..., None] * y) ** 2) / (2 * gap**2) - np.log(gap)
                            - 0.5 * np.log(2 * np.pi), axis=-1) - np.log(len(y))
    x0 = torch.linspace(-2.5, 2.5, 25, dtype=data_1d.dtype, device=data_1d.device)[:, None]
    paths = integrate(ClosedFormField(data_1d), x0, time_grid(ode_steps, spacing=spacing), method="heun",
                      return_trajectory=True)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    density = np.exp(log_density)
    mesh = ax.pcolormesh(tt, xx, density, shading="auto", vmax=np.quantile(density, 0.98))
    ax.plot(paths.ts.numpy(), paths.trajectory[:, :, 0].cpu().numpy(), color="white", lw=0.7, alpha=0.8)
    ax.scatter(np.ones_like(y), y, color="tab:cyan", zorder=3, s=25, clip_on=False, label="training points")
    ax.set(xlabel="time t", ylabel="position x", title="Density of $x_t$ and trajectories of $u^*$ (1-D)")
    colorbar(mesh, ax, "density of $x_t$ (clipped at its 98th percentile)")
    legend_outside(ax, loc="lower")
    return fig


FIELD_ARROW_LENGTH = 0.3
"""Length of every arrow of :func:`figure_field_2d` in data units (the grid spacing is 0.375)."""

FIELD_COLOURS = ListedColormap(plt.get_cmap("viridis")(np.linspace(0.0, 0.8, 256)))
"""Viridis without its palest fifth: the fastest arrows stay dark enough to read on white."""

TRAJECTORIES_SHOWN = 64
"""Trajectories drawn by :func:`figure_trajectories` (the first ones of the run's samples)."""


def figure_field_2d(field: ClosedFormField, times: Sequence[float] = (0.1, 0.5, 0.8, 0.95)) -> Figure:
    """The direction of u* on a grid of the plane at a few times, coloured by log speed, with the data.

    Arrows of one length (:data:`FIELD_ARROW_LENGTH`), so that the direction reads at every time;
    the speed is in the colour (:data:`FIELD_COLOURS`).
    """
    grid = torch.linspace(-3, 3, 17, dtype=field.data.dtype)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.flatten(), gy.flatten()], dim=1).to(field.data.device)
    speeds = [field.velocity(points, t).cpu() for t in times]
    low = min(float(u.norm(dim=1).log().min()) for u in speeds)
    high = max(float(u.norm(dim=1).log().max()) for u in speeds)
    fig, axes = plt.subplots(1, len(times), figsize=(3.3 * len(times) + 1.2, 3.6), sharex=True, sharey=True,
                             layout="constrained")
    data = field.data.cpu()
    for ax, t, u in zip(np.atleast_1d(axes), times, speeds, strict=True):
        speed = u.norm(dim=1)
        direction = u / speed.clamp(min=1e-12)[:, None]
        arrows = ax.quiver(points[:, 0].cpu(), points[:, 1].cpu(), direction[:, 0], direction[:, 1], speed.log(),
                           angles="xy", scale_units="xy", scale=1.0 / FIELD_ARROW_LENGTH, width=0.008,
                           headwidth=3.5, headlength=4.0, cmap=FIELD_COLOURS, clim=(low, high), pivot="mid")
        ax.scatter(data[:, 0], data[:, 1], color="tab:red", s=20, zorder=3)
        ax.set(title=f"t = {t}", aspect="equal", xlabel="$x_1$ (first coordinate)")
    np.atleast_1d(axes)[0].set_ylabel("$x_2$ (second coordinate)")
    colorbar(arrows, list(np.atleast_1d(axes)), r"log speed $\log\|u^*(x, t)\|$")
    fig.suptitle("Direction of $u^*(x, t)$; training points in red")
    return fig


def figure_segments(field: ClosedFormField, t: float) -> tuple[Figure, FloatArray]:
    r"""Every conditional segment through :math:`x = t \bar y` at time t, weighted by :math:`\lambda_i`.

    Returns the figure and the weights (n,).
    """
    data = field.data
    x = t * data.mean(dim=0, keepdim=True)
    weights = field.weights(x, t)[0].double().cpu().numpy()
    start = ((x - t * data) / (1 - t)).cpu()
    u = field.velocity(x, t)[0].cpu()
    x, y = x[0].cpu(), data.cpu()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for i in range(y.shape[0]):
        ax.plot([start[i, 0], y[i, 0]], [start[i, 1], y[i, 1]], color="tab:blue",
                alpha=0.15 + 0.85 * float(weights[i] / weights.max()), lw=1 + 3 * float(weights[i]))
    ax.scatter(y[:, 0], y[:, 1], color="tab:red", s=25, zorder=3, label="training points $y_i$")
    ax.scatter(x[0], x[1], color="black", zorder=4, label=f"$x$ at t = {t}")
    ax.annotate("", xy=(x[0] + 0.3 * u[0], x[1] + 0.3 * u[1]), xytext=(x[0], x[1]),
                arrowprops={"color": "black", "width": 2})
    ax.set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$", title="Conditional segments through one $(x, t)$")
    legend_outside(ax)
    return fig, weights


def figure_cfm(check: CFMCheck) -> Figure:
    r"""The estimated :math:`L_{CFM}(w + \varepsilon h)` with two standard errors, and the parabola, per direction."""
    fig, axes = plt.subplots(1, len(check.directions), figsize=(3.6 * len(check.directions), 3.4), sharey=True,
                             layout="constrained")
    for k, (ax, name) in enumerate(zip(np.atleast_1d(axes), check.directions, strict=True)):
        ax.errorbar(check.eps, check.loss[k], yerr=2 * check.loss_se[k], fmt="o", label="Monte Carlo, 2 s.e.")
        fine = np.linspace(check.eps.min(), check.eps.max(), 101)
        zero = int(np.flatnonzero(check.eps == 0)[0])
        ax.plot(fine, check.loss[k, zero] + fine**2 * check.h_norm2[k], "k--",
                label=r"$L(u^*) + \varepsilon^2 E\|h\|^2$")
        ax.set(xlabel=r"step $\varepsilon$", title=f"h = {name}")
    np.atleast_1d(axes)[0].set_ylabel(r"$L_{CFM}(u^* + \varepsilon h)$")
    legend_outside(np.atleast_1d(axes)[-1])
    return fig


def figure_trajectories(m: Memorisation, data: Tensor, shown: int = TRAJECTORIES_SHOWN) -> Figure:
    """Trajectories of the first solver from noise (grey) to the data (red), at most ``shown`` of them."""
    traj, y = m.trajectory[:, :shown], data.cpu()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.plot(traj[:, :, 0], traj[:, :, 1], color="tab:blue", lw=0.6, alpha=0.5)
    ax.scatter(traj[0, :, 0], traj[0, :, 1], s=8, color="gray", label="noise $x_0$")
    ax.scatter(y[:, 0], y[:, 1], color="tab:red", s=30, zorder=3, label="training points")
    ax.set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$", title=f"Trajectories of $u^*$ ({m.methods[0]})")
    legend_outside(ax)
    return fig
