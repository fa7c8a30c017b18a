r"""Monte Carlo of the concentration of the posterior weights on conditional paths, and its statistics.

The bounds of :mod:`fmlib.theory` (our *reconstructed* rendering of a bound of the kind of Gao & Li's
Theorem 4.4, arXiv 2410.23594) speak about a point on the conditional path of a data point
:math:`y_k`,

.. math::

    x = t\, y_k + (1 - t)\, z, \qquad z \sim N(0, I_d), \qquad k \sim \mathrm{Uniform}\{1, \dots, N\},

and about two events: some other point outweighs :math:`y_k` up to a factor
(:math:`\exists j \ne k: \lambda_j \ge \varepsilon \lambda_k`) and the weight of :math:`y_k` falls
short of one (:math:`\lambda_k < 1 - \eta`). :func:`draw_on_paths` draws such points and reads the
weights from :class:`fmlib.closed_form.ClosedFormField` (it never re-derives them), reduced per draw
to what the events and the exact per-pair law need. The same draws :math:`(k, z)` serve every time
of the grid (common random numbers: each time's frequency is an exact Monte-Carlo estimate, and the
curves over t are smooth).

The statistics: :func:`exact_pair_averages` averages the exact per-pair probabilities over a data
set (the exact probability of the pair event for a random pair, and the union bound with every
pair's own distance); :func:`pair_law_check` compares the per-pair log-ratios with their exact
Gaussian law (:func:`fmlib.theory.log_weight_ratio_law`); exact one-sided Clopper-Pearson limits
(:func:`fmlib.stats.binomial_limits`) and exact binomial tests (:func:`fmlib.stats.binomial_pvalue`)
turn counts into confidence statements.

The chapter ``notebooks/02_concentration.md`` is prose, parameters and calls to the rest of this
module: :func:`measure_grid` runs the Monte Carlo on every data set of its grid
(:class:`ConcentrationSpec`); :func:`check_exact_law` tests the exact law, an identity, and stops
the run with :class:`fmlib.experiments.verdicts.ClaimBroken` (naming ``concentration``) when it
breaks; :func:`check_bound` tests the reconstructed bound with a Bonferroni-corrected margin;
:func:`concentration_rule` turns both into the verdict on the claim; the ``*_summary`` functions
compute what the tables and figures of sections (c) to (h) show (crossing times censored by the
grid are shown as a dash, never as -inf or nan). The figures are drawn by
:mod:`fmlib.experiments.concentration_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.optimize import brentq
from torch import Tensor
from tqdm.auto import tqdm

from fmlib._checks import check_data, check_positive_int, check_times, resolve_device
from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.experiments.verdicts import Finding, graded, require
from fmlib.metrics import pairwise_separation
from fmlib.path import time_to_snr
from fmlib.stats import binomial_limits, binomial_pvalue, bonferroni, crossing_time, standard_error
from fmlib.theory import (
    concentration_bound,
    concentration_time,
    not_concentrated_bound,
    outweigh_probability,
    simplex_outweigh_probability,
)

__all__ = [
    "BoundChecks",
    "ConcentrationEvidence",
    "ConcentrationGrid",
    "ConcentrationSpec",
    "DimsSummary",
    "GaussSummary",
    "LawChecks",
    "PairAverages",
    "PairLawCheck",
    "PathDraws",
    "PlaneSummary",
    "SlackSummary",
    "check_bound",
    "check_exact_law",
    "concentration_finding",
    "concentration_rule",
    "digits_records",
    "dims_summary",
    "draw_on_paths",
    "exact_pair_averages",
    "gauss_summary",
    "measure_grid",
    "normal_regime",
    "pair_law_check",
    "plane_summary",
    "slack_summary",
    "uneven_sets",
]

DEFAULT_CHUNK_ELEMENTS = 1 << 22
"""Largest number of entries of a (draws x max(N, d)) block held at once (32 MiB in float64)."""

_FEW_DISTANCES = 64
"""Below this many distinct pairwise distances in a block, each probability is evaluated once."""


@dataclass(frozen=True)
class PathDraws:
    r"""Weights of the closed form at M draws on conditional paths, at T times; all tensors on the CPU.

    Draw m lies on the path of data point ``index[m]`` (= k) with noise :math:`z_m`, the same at every
    time. ``partner[m]`` (= j) is another data point drawn uniformly among the N - 1 others, used
    for the per-pair law.

    Attributes:
        times: (T,) float64, the times t.
        index: (M,) int64, k for each draw.
        partner: (M,) int64, j != k for each draw.
        partner_distance: (M,) float64, :math:`\|y_k - y_j\|`.
        log_weight: (T, M) float64, :math:`\log \lambda_k(x, t)`.
        log_gap: (T, M) float64, :math:`\max_{j \ne k} \log \lambda_j - \log \lambda_k`
            (>= 0 exactly when :math:`y_k` does not have the strictly largest weight).
        log_ratio: (T, M) float64, :math:`\log(\lambda_k / \lambda_j)` for the partner j.
    """

    times: Tensor
    index: Tensor
    partner: Tensor
    partner_distance: Tensor
    log_weight: Tensor
    log_gap: Tensor
    log_ratio: Tensor

    @property
    def n_draws(self) -> int:
        """M, the number of draws."""
        return int(self.index.shape[0])

    def outweighed(self, eps: float = 1.0) -> Tensor:
        r"""(T, M) bool: some :math:`j \ne k` has :math:`\lambda_j \ge \varepsilon \lambda_k`.

        With ``eps = 1``: :math:`y_k` does not have the strictly largest weight.
        """
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"eps must lie in (0, 1], got {eps!r}")
        return self.log_gap >= math.log(eps)

    def standardised_ratio(self) -> Tensor:
        r"""(T, M) float64: :math:`w = (\log(\lambda_k / \lambda_j) - u^2 / 2) / u`, :math:`u = s \|y_k - y_j\|`.

        The exact law (:func:`fmlib.theory.log_weight_ratio_law`) says more than "w ~ N(0, 1)":
        :math:`w = \langle y_k - y_j, z \rangle / \|y_k - y_j\|` for every draw, the same number at
        every time. NaN at t = 0, where u = 0.
        """
        u = (self.times / (1.0 - self.times)).unsqueeze(1) * self.partner_distance.unsqueeze(0)
        w = (self.log_ratio - u * u / 2.0) / u
        return torch.where(u > 0, w, torch.full_like(w, float("nan")))

    def short_of_one(self, eta: float) -> Tensor:
        r"""(T, M) bool: :math:`\lambda_k < 1 - \eta` (the weights are not concentrated up to :math:`\eta`)."""
        if not 0.0 < eta < 1.0:
            raise ValueError(f"eta must lie in (0, 1), got {eta!r}")
        return self.log_weight < math.log1p(-eta)


def draw_on_paths(
    data: Tensor,
    times: Sequence[float] | Tensor,
    n_draws: int,
    *,
    generator: torch.Generator | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> PathDraws:
    r"""Draw M points on conditional paths and record the weights of the closed form at each time.

    For each draw, :math:`k` uniform over the N data points, :math:`z \sim N(0, I_d)` and a partner
    :math:`j` uniform over the others; for each time t of ``times``,
    :math:`x = t\, y_k + (1 - t)\, z` and the weights :math:`\lambda(x, t)` from
    :meth:`fmlib.closed_form.ClosedFormField.log_weights`, computed in chunks of draws so that no
    block exceeds ``chunk_elements`` entries.

    Random numbers are drawn in float64 on the generator's device (the data's device when None),
    in this order: k (M,), j (M,), then z chunk by chunk, so a seed gives the same draws whatever
    the grid of times (the chunks, which depend on N, d and ``chunk_elements``, do change z).

    Args:
        data: (N, d) training points, N >= 2, float32 or float64, any device.
        times: T times in [0, 1).
        n_draws: M, the number of draws.
        generator: a :class:`torch.Generator`, or None for torch's global one.
        chunk_elements: the largest (draws x max(N, d)) block computed at once.

    Returns:
        A :class:`PathDraws` with float64 CPU tensors.
    """
    check_data(data)
    n_points, dim = data.shape
    if n_points < 2:
        raise ValueError(f"data must hold at least 2 points (N >= 2) for another point to compete, got N={n_points}")
    grid = check_times(times, "times", include_end=False, increasing=False)
    n_draws = check_positive_int(n_draws, "n_draws")
    chunk_elements = check_positive_int(chunk_elements, "chunk_elements")
    source = generator.device if generator is not None else data.device
    index = torch.randint(n_points, (n_draws,), generator=generator, device=source)
    partner = (index + torch.randint(1, n_points, (n_draws,), generator=generator, device=source)) % n_points
    index, partner = index.to(data.device), partner.to(data.device)
    partner_distance = (data[index] - data[partner]).norm(dim=1)

    field = ClosedFormField(data)
    chunk = max(1, min(n_draws, chunk_elements // max(n_points, dim)))
    shape = (grid.numel(), n_draws)
    log_weight, log_gap, log_ratio = (torch.empty(shape, dtype=torch.float64) for _ in range(3))
    for start in range(0, n_draws, chunk):
        stop = min(start + chunk, n_draws)
        k, j = index[start:stop], partner[start:stop]
        z = torch.randn(stop - start, dim, generator=generator, dtype=torch.float64, device=source)
        z = z.to(device=data.device, dtype=data.dtype)
        y_k = data[k]
        rows = torch.arange(stop - start, device=data.device)
        for step, t in enumerate(grid.tolist()):
            log_w = field.log_weights(t * y_k + (1.0 - t) * z, t)
            own = log_w[rows, k]
            log_ratio[step, start:stop] = (own - log_w[rows, j]).double().cpu()
            log_weight[step, start:stop] = own.double().cpu()
            log_w[rows, k] = float("-inf")
            log_gap[step, start:stop] = (log_w.amax(dim=1) - own).double().cpu()
    return PathDraws(
        times=grid,
        index=index.cpu(),
        partner=partner.cpu(),
        partner_distance=partner_distance.double().cpu(),
        log_weight=log_weight,
        log_gap=log_gap,
        log_ratio=log_ratio,
    )


@dataclass(frozen=True)
class PairAverages:
    r"""Exact per-pair probabilities averaged over a data set, at T times.

    Attributes:
        times: (T,) float64.
        mean: (T,) the average over ordered pairs (k, j), j != k, of
            :math:`P[\lambda_j \ge \varepsilon \lambda_k]` on the path of :math:`y_k`: the exact
            probability of that event for k and then j drawn uniformly (as in :func:`draw_on_paths`).
        union: (T,) the average over k of :math:`\min(1, \sum_{j \ne k} P[\lambda_j \ge \varepsilon \lambda_k])`:
            the union bound with every pair's own distance (see :func:`exact_pair_averages`).
    """

    times: np.ndarray
    mean: np.ndarray
    union: np.ndarray


def exact_pair_averages(
    data: Tensor,
    times: Sequence[float] | Tensor,
    *,
    eps: float = 1.0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> PairAverages:
    r"""Average the exact per-pair probabilities over the pairs of a data set.

    With :math:`p_{kj}(t) = P[\lambda_j \ge \varepsilon \lambda_k]` on the path of :math:`y_k`
    (:func:`fmlib.theory.outweigh_probability` at the distance :math:`\|y_k - y_j\|`), returns

    .. math::

        \bar p(t) = \frac{1}{N (N - 1)} \sum_k \sum_{j \ne k} p_{kj}(t), \qquad
        U(t) = \frac1N \sum_{k=1}^N \min\Big(1,\ \sum_{j \ne k} p_{kj}(t)\Big)
        \;\le\; \min\Big(1,\ (N - 1)\, \Phi\Big(\frac{\log(1/\varepsilon)}{s\delta} - \frac{s\delta}{2}\Big)\Big).

    :math:`\bar p` is the exact probability of the pair event for a uniform k and a uniform partner
    j != k, so the count of :func:`draw_on_paths` is exactly Binomial(M, :math:`\bar p`). U is the
    first inequality in the proof of the concentration bound (*reconstructed*, see
    :func:`fmlib.theory.concentration_bound`), before every distance is replaced by the separation
    :math:`\delta = \min_{i \ne j} \|y_i - y_j\|`: it bounds the probability that some point outweighs
    :math:`y_k` for a uniform k. For a regular simplex U equals the bound.

    Args:
        data: (N, d) training points, N >= 2, pairwise distinct.
        times: T times in [0, 1).
        eps: :math:`\varepsilon \in (0, 1]`.
        chunk_elements: the largest block of distances computed at once.

    Returns:
        A :class:`PairAverages`.
    """
    check_data(data)
    n_points = data.shape[0]
    if n_points < 2:
        raise ValueError(f"data must hold at least 2 points, got N={n_points}")
    if not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must lie in (0, 1], got {eps!r}")
    grid = check_times(times, "times", include_end=False, increasing=False).numpy()
    rows = max(1, check_positive_int(chunk_elements, "chunk_elements") // n_points)
    pair_sum, union_sum = np.zeros(grid.shape[0]), np.zeros(grid.shape[0])
    data64 = data.double()
    for start in range(0, n_points, rows):
        block = data64[start : start + rows]
        distance = torch.cdist(block, data64).cpu().numpy()
        own = np.arange(block.shape[0]), np.arange(start, start + block.shape[0])
        distance[own] = np.inf  # the pair (k, k): probability 0
        if not np.all(distance > 0):
            raise ValueError("data hold two equal points (a pairwise distance is 0); expected distinct points")
        # few distinct distances (a simplex, a lattice): evaluate each once, up to 1e-12 of the largest
        scale = float(distance[np.isfinite(distance)].max())
        values, inverse = np.unique(np.round(distance / scale, 12), return_inverse=True)
        inverse = inverse.reshape(distance.shape)
        if values.shape[0] <= _FEW_DISTANCES:
            counts = np.bincount((np.arange(distance.shape[0])[:, None] * values.shape[0] + inverse).ravel(),
                                 minlength=distance.shape[0] * values.shape[0]).reshape(-1, values.shape[0])
            finite = np.isfinite(values)
            values, counts = values[finite] * scale, counts[:, finite]
        for step, t in enumerate(grid):
            if values.shape[0] <= _FEW_DISTANCES:
                per_point = counts @ np.asarray(outweigh_probability(t, values, eps=eps)).reshape(-1)
            else:
                finite = np.isfinite(distance)
                pair = np.zeros(distance.shape)
                pair[finite] = outweigh_probability(t, distance[finite], eps=eps)
                per_point = pair.sum(axis=1)
            pair_sum[step] += per_point.sum()
            union_sum[step] += np.minimum(1.0, per_point).sum()
    return PairAverages(times=grid, mean=pair_sum / (n_points * (n_points - 1)), union=union_sum / n_points)


@dataclass(frozen=True)
class PairLawCheck:
    r"""The per-pair log-ratios of a :class:`PathDraws` against their exact law, at every time.

    With :math:`u = s \|y_k - y_j\|` (:math:`s = t / (1 - t)`), the exact law
    (:func:`fmlib.theory.log_weight_ratio_law`) says
    :math:`\log(\lambda_k / \lambda_j) = u^2 / 2 + u\, w` with
    :math:`w = \langle y_k - y_j, z \rangle / \|y_k - y_j\| \sim N(0, 1)`, independent over draws
    and the same number at every time (:meth:`PathDraws.standardised_ratio`). Entries at t = 0,
    where u = 0, are NaN, except the counts.

    Attributes:
        times: (T,).
        n_draws: M.
        mean_z: (T,) :math:`\sqrt{M}\, \bar w`, exactly N(0, 1) under the law.
        std_ratio: (T,) the sample standard deviation of w (1 under the law).
        variance_p: (T,) two-sided p-value of :math:`(M - 1) S_w^2 \sim \chi^2_{M-1}`.
        ks_p: (T,) p-value of the Kolmogorov-Smirnov test of w against N(0, 1).
        pathwise_spread: :math:`\max_m (\max_t w_m(t) - \min_t w_m(t))` over t > 0: 0 up to round-off
            under the law.
        eps: (E,) the factors :math:`\varepsilon` of the pair events :math:`\lambda_j \ge \varepsilon \lambda_k`.
        observed: (T, E) int, the number of draws with the pair event.
        expected: (T, E) its exact probability :math:`\bar p` (:func:`exact_pair_averages`); the
            count is exactly Binomial(M, :math:`\bar p`).
        binomial_p: (T, E) the exact two-sided p-value of the count (:func:`binomial_pvalue`).
        union: (T, E) the union bound with every pair's own distance (:func:`exact_pair_averages`),
            computed on the way.
    """

    times: np.ndarray
    n_draws: int
    mean_z: np.ndarray
    std_ratio: np.ndarray
    variance_p: np.ndarray
    ks_p: np.ndarray
    pathwise_spread: float
    eps: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    binomial_p: np.ndarray
    union: np.ndarray


def pair_law_check(draws: PathDraws, data: Tensor, *, eps: Sequence[float] = (1.0,)) -> PairLawCheck:
    """Compare the per-pair log-ratios of ``draws`` (drawn on ``data``) with their exact law at every time.

    Args:
        draws: from :func:`draw_on_paths` on ``data``.
        data: the (N, d) training points the draws were made on.
        eps: factors in (0, 1] for the pair events :math:`\\lambda_j \\ge \\varepsilon \\lambda_k`.

    Returns:
        A :class:`PairLawCheck`.
    """
    m = draws.n_draws
    w = draws.standardised_ratio().numpy()
    n_times = w.shape[0]
    mean_z, std_ratio, variance_p, ks_p = (np.full(n_times, np.nan) for _ in range(4))
    for step in range(n_times):
        if not np.all(np.isfinite(w[step])):
            continue
        mean_z[step] = np.sqrt(m) * w[step].mean()
        if m > 1:
            variance = w[step].var(ddof=1)
            std_ratio[step] = np.sqrt(variance)
            chi2 = (m - 1) * variance
            variance_p[step] = min(1.0, 2.0 * min(stats.chi2.cdf(chi2, m - 1), stats.chi2.sf(chi2, m - 1)))
        ks_p[step] = stats.kstest(w[step], "norm").pvalue
    positive = draws.times.numpy() > 0
    spread = float(np.ptp(w[positive], axis=0).max()) if positive.sum() > 1 else 0.0
    factors = np.asarray(eps, dtype=np.float64).reshape(-1)
    log_ratio = draws.log_ratio.numpy()
    observed = np.stack([(log_ratio <= -np.log(f)).sum(axis=1) for f in factors], axis=1)
    averages = [exact_pair_averages(data, draws.times, eps=float(f)) for f in factors]
    expected = np.stack([a.mean for a in averages], axis=1)
    return PairLawCheck(
        times=draws.times.numpy(), n_draws=m, mean_z=mean_z, std_ratio=std_ratio, variance_p=variance_p,
        ks_p=ks_p, pathwise_spread=spread, eps=factors, observed=observed, expected=expected,
        binomial_p=binomial_pvalue(observed, m, expected), union=np.stack([a.union for a in averages], axis=1),
    )
# --- the chapter's grid of data sets -------------------------------------------------------------

FAMILIES = {
    "plane": "simplices, plane (t, δ)",
    "N": "simplices, sweep over N",
    "d": "simplex, sweep over d",
    "gauss": "Gaussian, fresh in each d",
    "embedded": "Gaussian, embedded",
    "digits": "digits",
}
"""Readable names of the families of data sets (the ``block`` column of :class:`ConcentrationGrid`)."""

OUTWEIGHED = "some point outweighs y_k"
SHORT_OF_ONE = "weight of y_k below 1 - eta"

PATHWISE_TOLERANCE = 1e-8
"""Largest change over t > 0 of a draw's standardised log-ratio w allowed by the exact law (round-off)."""

LIMIT_TIME = 1.0 - 1e-6
"""The time at which the rule reads the limit of the bound as t -> 1."""

PAPER_STATEMENT_READ = False
"""Whether the exact statement of Gao & Li's Theorem 4.4 (constant, threshold, assumptions) could be
compared: it could not, the stored text has its mathematics stripped (``shared/notes/gao_li_2410.23594.md``)."""

DASH = "—"
"""What a table shows where a number does not apply or a crossing time is censored (never -inf or nan)."""


@dataclass(frozen=True)
class ConcentrationSpec:
    """The parameters of the chapter ``notebooks/02_concentration.md`` (their meaning is in its parameters cell).

    Raises ValueError, naming the parameter, on combinations the chapter cannot use.
    """

    n_draws: int
    n_times: int
    t_min: float
    t_max: float
    n_separations: int
    delta_min: float
    delta_max: float
    n_simplex: int
    dim: int
    n_points: tuple[int, ...]
    dims: tuple[int, ...]
    n_dims_points: int
    delta_sweep: float
    n_gauss: int
    gauss_dims: tuple[int, ...]
    n_digits: int
    eta: float
    level: float
    alpha: float
    seed: int
    device: str

    def __post_init__(self) -> None:
        for name in ("n_points", "dims", "gauss_dims"):
            values = tuple(int(v) for v in getattr(self, name))
            if not values:
                raise ValueError(f"{name} must list at least one value")
            object.__setattr__(self, name, values)
        if not 0.0 < self.t_min < self.t_max < 1.0:
            raise ValueError(f"t_min ({self.t_min}) must be below t_max ({self.t_max}), both in (0, 1)")
        if not 0.0 < self.delta_min <= self.delta_max:
            raise ValueError(f"delta_min ({self.delta_min}) must be positive and not exceed delta_max "
                             f"({self.delta_max})")
        if self.n_dims_points - 1 > min(self.dims):
            raise ValueError(f"a simplex of n_dims_points = {self.n_dims_points} vertices needs every d of dims >= "
                             f"{self.n_dims_points - 1}; got min(dims) = {min(self.dims)}: raise dims or lower "
                             "n_dims_points")
        if self.n_times < 2 or self.n_draws < 10:
            raise ValueError(f"n_times must be >= 2 and n_draws >= 10, got {self.n_times} and {self.n_draws}")
        if not (0.0 < self.eta < 1.0 and 0.0 < self.level < 1.0 and 0.0 < self.alpha < 1.0):
            raise ValueError(f"eta, level and alpha must lie in (0, 1), got {self.eta}, {self.level}, {self.alpha}")

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> ConcentrationSpec:
        """The spec from the chapter's parameters, read by name from ``namespace`` (the notebook's ``globals()``)."""
        return cls(**{f.name: namespace[f.name] for f in fields(cls)})

    @property
    def times(self) -> np.ndarray:
        """(T,) the grid: 0, then ``n_times - 1`` times evenly spaced in log(t / (1 - t)) from t_min to t_max."""
        odds = np.geomspace(self.t_min / (1 - self.t_min), self.t_max / (1 - self.t_max), self.n_times - 1)
        return np.concatenate([[0.0], odds / (1 + odds)])

    @property
    def separations(self) -> np.ndarray:
        """The separations of the (t, delta) plane, log-spaced."""
        return np.geomspace(self.delta_min, self.delta_max, self.n_separations)

    @property
    def fine_t(self) -> np.ndarray:
        """300 times from 0 to t_max, for the curves of the exact formulas."""
        return np.linspace(0.0, self.t_max, 300)


@dataclass(frozen=True)
class ConcentrationGrid:
    """The Monte Carlo of the chapter: one row per (data set, time), one law check per data set.

    Attributes:
        spec: the parameters.
        device: where it ran.
        rows: columns config, block, N, d, delta_min, delta_median, t, s, count, count_eta (draws with
            each event), bound, bound_eta (:func:`fmlib.theory.concentration_bound`,
            :func:`fmlib.theory.not_concentrated_bound` at the separation), pair_expected, union,
            delta and exact (simplices only), p, p_eta (frequencies), se, se_eta (standard errors).
        laws: per data set, the summaries of :func:`pair_law_check` (mean_z, std_ratio, variance_p,
            ks_p, pathwise_spread, binomial_p: the smallest, n_binomial: how many).
        binomial_pvalues: every exact binomial p-value of the pair events, all data sets together.
        w_samples: (block, N, d) -> (standardised log-ratios at the first positive time, their KS p-value),
            for three data sets.
    """

    spec: ConcentrationSpec
    device: str
    rows: pd.DataFrame
    laws: pd.DataFrame
    binomial_pvalues: np.ndarray
    w_samples: dict[tuple[str, int, int], tuple[np.ndarray, float]]

    def block(self, name: str) -> pd.DataFrame:
        """The rows of one family of data sets."""
        return self.rows[self.rows["block"] == name]

    def records(self) -> dict[str, Any]:
        """The parameters the prose quotes, under their glue keys."""
        spec = self.spec
        return {
            "n_draws_shown": spec.n_draws, "n_times_shown": len(spec.times), "t_max_shown": spec.t_max,
            "eta_shown": spec.eta, "level_shown": spec.level, "alpha_shown": spec.alpha,
            "n_simplex_shown": spec.n_simplex, "n_gauss_shown": spec.n_gauss, "n_digits_shown": spec.n_digits,
            "device_shown": self.device, "delta_min_shown": float(spec.separations[0]),
            "delta_max_shown": float(spec.separations[-1]), "delta_sweep_shown": spec.delta_sweep,
            "dim_shown": max(spec.dim, spec.n_simplex - 1), "n_separations_shown": len(spec.separations),
            "n_min_shown": min(spec.n_points), "n_max_shown": max(spec.n_points),
            "n_dims_points_shown": spec.n_dims_points, "d_min_shown": min(spec.dims), "d_max_shown": max(spec.dims),
        }


def _embed(base: Tensor, d: int) -> Tensor:
    """The points ``base`` (N, d0) in dimension d >= d0, zeros in the new coordinates (same distances)."""
    return torch.cat([base, base.new_zeros(base.shape[0], d - base.shape[1])], dim=1)


def measure_grid(spec: ConcentrationSpec, *, progress: bool = True) -> ConcentrationGrid:
    r"""Run the Monte Carlo of the chapter on every data set of its grid, in float64 on ``spec.device``.

    The data sets, in this order (one seeded generator; the Gaussian points embedded in every d are
    drawn first): regular simplices of ``n_simplex`` vertices for each separation of the plane;
    simplices of separation ``delta_sweep`` for each N of ``n_points`` and, with ``n_dims_points``
    vertices, for each d of ``dims``; ``n_gauss`` Gaussian points, fresh in each d of ``gauss_dims``
    and embedded from the smallest; ``n_digits`` digits. On each, :func:`draw_on_paths` (the same
    draws at every time), :func:`pair_law_check` at :math:`\varepsilon = 1, 0.1`, the bounds at the
    separation and, on simplices, the exact probability :func:`fmlib.theory.simplex_outweigh_probability`.
    """
    dev = resolve_device(spec.device)
    generator = torch.Generator(device=dev).manual_seed(spec.seed)
    times = spec.times

    def simplex(n: int, d: int, delta: float) -> Tensor:
        return make_dataset("simplex", n, d=max(d, n - 1), separation=float(delta), generator=generator, device=dev,
                            dtype=torch.float64)

    def gaussian(n: int, d: int) -> Tensor:
        return make_dataset("gaussian", n, d=d, generator=generator, device=dev, dtype=torch.float64)

    configs: list[tuple[str, float | None, Callable[[], Tensor]]] = [
        ("plane", float(delta), partial(simplex, spec.n_simplex, spec.dim, delta)) for delta in spec.separations]
    configs += [("N", spec.delta_sweep, partial(simplex, n, spec.dim, spec.delta_sweep)) for n in spec.n_points]
    configs += [("d", spec.delta_sweep, partial(simplex, spec.n_dims_points, d, spec.delta_sweep)) for d in spec.dims]
    configs += [("gauss", None, partial(gaussian, spec.n_gauss, d)) for d in spec.gauss_dims]
    base = gaussian(spec.n_gauss, min(spec.gauss_dims))
    configs += [("embedded", None, partial(_embed, base, d)) for d in spec.gauss_dims]
    configs += [("digits", None, partial(make_dataset, "digits", spec.n_digits, generator=generator, device=dev,
                                         dtype=torch.float64))]

    rows, law_rows, pvalues, w_samples = [], [], [], {}
    for index, (block, delta, make) in enumerate(tqdm(configs, desc="data sets", disable=not progress)):
        data = make()
        n, d = data.shape
        separation = pairwise_separation(data)
        draws = draw_on_paths(data, times, spec.n_draws, generator=generator)
        law = pair_law_check(draws, data, eps=(1.0, 0.1))
        frame = pd.DataFrame({
            "config": index, "block": block, "N": n, "d": d,
            "delta_min": separation.minimum, "delta_median": separation.median, "t": times, "s": times / (1 - times),
            "count": draws.outweighed(1.0).sum(dim=1).numpy(),
            "count_eta": draws.short_of_one(spec.eta).sum(dim=1).numpy(),
            "bound": concentration_bound(times, separation.minimum, n),
            "bound_eta": not_concentrated_bound(times, separation.minimum, n, eta=spec.eta),
            "pair_expected": law.expected[:, 0],
        })
        if delta is not None:
            frame["delta"] = delta
            frame["exact"] = simplex_outweigh_probability(times, delta, n)
            frame["union"] = frame["bound"]
        else:
            frame["union"] = law.union[:, 0]
        rows.append(frame)
        tested = (law.expected > 0) & (law.expected < 1)
        pvalues.append(law.binomial_p[tested])
        law_rows.append({"config": index, "block": block, "N": n, "d": d, "mean_z": np.nanmax(np.abs(law.mean_z)),
                         "std_ratio": law.std_ratio[1], "variance_p": np.nanmin(law.variance_p),
                         "ks_p": np.nanmin(law.ks_p), "pathwise_spread": law.pathwise_spread,
                         "binomial_p": law.binomial_p[tested].min(initial=1.0), "n_binomial": int(tested.sum())})
        if index in (len(spec.separations) // 2, len(configs) - 1) or (block == "gauss" and d == max(spec.gauss_dims)):
            w_samples[(block, n, d)] = (draws.standardised_ratio()[1].numpy(), float(law.ks_p[1]))
        del draws

    grid = pd.concat(rows, ignore_index=True)
    grid["p"] = grid["count"] / spec.n_draws
    grid["p_eta"] = grid["count_eta"] / spec.n_draws
    grid["se"] = standard_error(grid["p"], spec.n_draws)
    grid["se_eta"] = standard_error(grid["p_eta"], spec.n_draws)
    return ConcentrationGrid(spec=spec, device=str(dev), rows=grid, laws=pd.DataFrame(law_rows),
                             binomial_pvalues=np.concatenate(pvalues), w_samples=w_samples)


# --- (a) the exact law: an identity, the run stops when it breaks --------------------------------


def dash_count(*tables: pd.DataFrame) -> str:
    """How many censored crossing times (:data:`DASH` in a column named ``t* ...``) the tables show, for the prose:
    ``"none"``, ``"one"`` or the number."""
    count = sum(int((table[column].astype(str) == DASH).sum()) for table in tables for column in table.columns
                if str(column).startswith("t*"))
    return {0: "none", 1: "one"}.get(count, str(count))


def _number(value: float, spec: str = ".3g") -> str:
    """A number for a table: formatted, or a dash where it is not finite."""
    return format(float(value), spec) if np.isfinite(value) else DASH


def _span(values: pd.Series, spec: str = "d") -> str:
    """'a' or 'a to b' for the range of a column."""
    low, high = values.min(), values.max()
    return format(low, spec) if low == high else f"{low:{spec}} to {high:{spec}}"


@dataclass(frozen=True)
class LawChecks:
    r"""The tests of the exact per-pair law (:func:`check_exact_law`).

    Attributes:
        n_tests: G, the number of tests (KS, variance and mean of w per data set; every binomial
            test of a pair event; every binomial test of a simplex against its exact probability).
        min_p: the smallest p-value; ``min_p_adjusted`` the smallest Bonferroni-adjusted one
            (:func:`fmlib.stats.bonferroni`); the law is rejected when it is below alpha.
        threshold: alpha / G, the level of each test.
        pathwise_spread: the largest change of a draw's standardised log-ratio over t > 0.
        z_limit: the Bonferroni-corrected two-sided normal limit :math:`\Phi^{-1}(1 - \alpha / (2G))`.
        n_simplex_tests, simplex_min_p, simplex_max_abs_err: the simplices against the exact integral.
        table: per family of data sets, readable.
    """

    n_tests: int
    min_p: float
    min_p_adjusted: float
    threshold: float
    pathwise_spread: float
    z_limit: float
    n_simplex_tests: int
    simplex_min_p: float
    simplex_max_abs_err: float
    n_configs: int
    table: pd.DataFrame

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        return {
            "law_spread_max": self.pathwise_spread, "n_law_tests": self.n_tests, "law_min_p": self.min_p,
            "law_min_p_bonferroni": self.min_p_adjusted, "law_threshold": self.threshold,
            "simplex_min_p": self.simplex_min_p, "n_simplex_tests": self.n_simplex_tests,
            "simplex_max_abs_err": self.simplex_max_abs_err, "law_n_configs": self.n_configs,
        }


def check_exact_law(measured: ConcentrationGrid) -> LawChecks:
    r"""Test the Monte Carlo against the exact per-pair law; stop the run (``concentration``) when it breaks.

    Two checks, each an identity of :func:`fmlib.theory.log_weight_ratio_law` read through the closed form:

    - pathwise: every draw's standardised log-ratio w is the same at every t > 0, up to
      :data:`PATHWISE_TOLERANCE` (deterministic);
    - in law: the G tests of :class:`LawChecks` (w against N(0, 1) by its mean, variance and KS; the
      counts of the pair events and, on simplices, of "some point outweighs y_k" against their exact
      binomial laws), Bonferroni-corrected (:func:`fmlib.stats.bonferroni`) at family-wise level alpha.

    Raises:
        ClaimBroken: naming ``concentration``, when either check fails.
    """
    spec, grid, laws = measured.spec, measured.rows, measured.laws
    spread = float(laws["pathwise_spread"].max())
    simplex_rows = grid[grid["exact"].notna() & (grid["exact"] > 0) & (grid["exact"] < 1)]
    simplex_p = binomial_pvalue(simplex_rows["count"].to_numpy(), spec.n_draws, simplex_rows["exact"].to_numpy())
    pvalues = np.concatenate([laws["ks_p"], laws["variance_p"], 2 * stats.norm.sf(laws["mean_z"]),
                              measured.binomial_pvalues, simplex_p])
    adjusted = bonferroni(pvalues)
    n_tests = int(np.isfinite(pvalues).sum())
    table = pd.DataFrame([{
        "data": FAMILIES[block], "data sets": len(part), "N": _span(part["N"]), "d": _span(part["d"]),
        "largest |√M mean of w|": _number(part["mean_z"].max(), ".2f"),
        "s.d. of w": _span(part["std_ratio"], ".3f"),
        "smallest KS p-value": _number(part["ks_p"].min(), ".2g"),
        "smallest binomial p-value": _number(part["binomial_p"].min(), ".2g"),
        "largest change of w with t": _number(part["pathwise_spread"].max(), ".1e"),
    } for block, part in laws.groupby("block", sort=False)])
    checks = LawChecks(
        n_tests=n_tests, min_p=float(np.nanmin(pvalues)), min_p_adjusted=float(np.nanmin(adjusted)),
        threshold=spec.alpha / n_tests, pathwise_spread=spread,
        z_limit=float(stats.norm.isf(spec.alpha / (2 * n_tests))), n_simplex_tests=len(simplex_rows),
        simplex_min_p=float(simplex_p.min(initial=1.0)),
        simplex_max_abs_err=float((simplex_rows["p"] - simplex_rows["exact"]).abs().max()),
        n_configs=len(laws), table=table,
    )
    require(spread < PATHWISE_TOLERANCE, "concentration",
            f"the standardised log-ratio changed with t by {spread:.2e} (exact law: it must not, tolerance "
            f"{PATHWISE_TOLERANCE:g})")
    require(checks.min_p_adjusted >= spec.alpha, "concentration",
            f"the Monte Carlo disagrees with the exact law: smallest Bonferroni-adjusted p-value "
            f"{checks.min_p_adjusted:.2e} below alpha = {spec.alpha:g} ({n_tests} tests)")
    return checks


# --- (b) the bound, and the verdict ----------------------------------------------------------------


@dataclass(frozen=True)
class BoundChecks:
    """The reconstructed bounds against the measured frequencies (:func:`check_bound`).

    Attributes:
        n_tests: G, the (data set, time, event) triples with a non-trivial bound (B < 1).
        n_violations: how many have the one-sided Clopper-Pearson lower limit of the frequency, at
            level alpha / G, above the bound; ``violations`` lists them (readable).
        n_above_raw, max_excess: frequencies above the bound at all, and the largest excess.
        min_p, min_p_adjusted: the smallest one-sided p-value of "probability <= bound", raw and
            Bonferroni-adjusted; threshold = alpha / G.
        limit_bound: the largest bound, over data sets and both events, at t = :data:`LIMIT_TIME`.
    """

    n_tests: int
    n_grid_points: int
    n_violations: int
    n_above_raw: int
    max_excess: float
    min_p: float
    min_p_adjusted: float
    threshold: float
    limit_bound: float
    violations: pd.DataFrame

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        return {
            "n_bound_tests": self.n_tests, "n_grid_points": self.n_grid_points, "n_above_raw": self.n_above_raw,
            "max_excess": self.max_excess, "bound_min_p": self.min_p, "bound_min_p_bonferroni": self.min_p_adjusted,
            "bound_threshold": self.threshold, "n_bound_violations": self.n_violations,
            "limit_bound": self.limit_bound,
        }


def check_bound(measured: ConcentrationGrid) -> BoundChecks:
    r"""Test "probability <= bound" at every (data set, time, event) where the bound is below 1.

    The test of a triple fails when the exact one-sided Clopper-Pearson lower limit of the measured
    frequency (:func:`fmlib.stats.binomial_limits`) at level alpha / G lies above the bound
    (Bonferroni over the G triples: a true bound fails somewhere with probability at most alpha).
    Also evaluates both bounds at t = :data:`LIMIT_TIME` on every data set (their limit as t -> 1).
    """
    spec, grid = measured.spec, measured.rows
    checks = pd.concat([
        grid.assign(event=OUTWEIGHED, k=grid["count"], B=grid["bound"]),
        grid.assign(event=SHORT_OF_ONE, k=grid["count_eta"], B=grid["bound_eta"]),
    ], ignore_index=True)
    checks = checks[checks["B"] < 1].copy()
    n_tests = len(checks)
    sets = grid.drop_duplicates("config")
    limit = max(float(np.max(concentration_bound(LIMIT_TIME, sets["delta_min"].to_numpy(), sets["N"].to_numpy()))),
                float(np.max(not_concentrated_bound(LIMIT_TIME, sets["delta_min"].to_numpy(), sets["N"].to_numpy(),
                                                    eta=spec.eta))))
    if n_tests == 0:
        return BoundChecks(0, len(grid), 0, 0, math.nan, math.nan, math.nan, math.nan, limit, checks.iloc[:0])
    checks["lower"] = binomial_limits(checks["k"].to_numpy(), spec.n_draws, spec.alpha / n_tests)[0]
    checks["freq"] = checks["k"] / spec.n_draws
    bound_p = binomial_pvalue(checks["k"].to_numpy(), spec.n_draws, checks["B"].to_numpy(), alternative="greater")
    bad = checks[checks["lower"] > checks["B"]]
    violations = pd.DataFrame({
        "data": bad["block"].map(FAMILIES), "N": bad["N"], "d": bad["d"], "t": bad["t"].map("{:.4f}".format),
        "event": bad["event"], "frequency": bad["freq"].map("{:.3g}".format),
        "lower limit": bad["lower"].map("{:.3g}".format), "bound": bad["B"].map("{:.3g}".format),
    })
    return BoundChecks(
        n_tests=n_tests, n_grid_points=len(grid), n_violations=len(bad),
        n_above_raw=int((checks["freq"] > checks["B"]).sum()), max_excess=float((checks["freq"] - checks["B"]).max()),
        min_p=float(bound_p.min()), min_p_adjusted=float(bonferroni(bound_p).min()), threshold=spec.alpha / n_tests,
        limit_bound=limit, violations=violations,
    )


@dataclass(frozen=True)
class ConcentrationEvidence:
    """What the rule of the claim ``concentration`` reads (see :func:`concentration_rule`)."""

    n_bound_tests: int
    n_violations: int
    n_law_tests: int
    law_min_p_adjusted: float
    limit_bound: float
    alpha: float
    level: float

    @classmethod
    def from_checks(cls, law: LawChecks, bound: BoundChecks, spec: ConcentrationSpec) -> ConcentrationEvidence:
        return cls(n_bound_tests=bound.n_tests, n_violations=bound.n_violations, n_law_tests=law.n_tests,
                   law_min_p_adjusted=law.min_p_adjusted, limit_bound=bound.limit_bound, alpha=spec.alpha,
                   level=spec.level)


def concentration_rule(evidence: ConcentrationEvidence, *, statement_read: bool = PAPER_STATEMENT_READ) -> Finding:
    r"""The verdict on Gao & Li's Theorem 4.4 (claim ``concentration``), from the checks of the reconstructed bound.

    Criterion, fixed before the run:

    1. the reconstructed bound holds: at least one (data set, time, event) has a non-trivial bound,
       and at none does the Clopper-Pearson lower limit of the frequency, at level alpha / G
       (Bonferroni over the G tests), lie above the bound;
    2. the exact per-pair law is not rejected: smallest Bonferroni-adjusted p-value >= alpha (the
       chapter stops before the rule when it is, :func:`check_exact_law`);
    3. the bound goes to 0 as t -> 1: at t = 1 - 1e-6 both bounds are below ``level`` on every data set.

    If one fails: NOT_REPRODUCED. If all hold: PARTLY, because what was checked is our
    reconstruction, a bound of the kind the paper states with the properties it states (depends on
    the separation, t and N, not on d; vanishes as t -> 1), not the paper's theorem, whose constant,
    threshold and assumptions could not be read (:data:`PAPER_STATEMENT_READ`); REPRODUCED only when
    the paper's statement was compared (``statement_read``).
    """
    bound_holds = evidence.n_bound_tests > 0 and evidence.n_violations == 0
    law_holds = evidence.law_min_p_adjusted >= evidence.alpha
    vanishes = evidence.limit_bound < evidence.level
    holds = bound_holds and law_holds and vanishes
    verdict = graded(holds and statement_read, holds)
    number = (f"reconstructed bound exceeded beyond the margin at {evidence.n_violations} of {evidence.n_bound_tests} "
              f"grid tests; exact law: smallest Bonferroni-adjusted p-value {evidence.law_min_p_adjusted:.2g} over "
              f"{evidence.n_law_tests} tests; bound at t = 1 - 1e-6: {evidence.limit_bound:.1e}; "
              + ("the paper's statement compared" if statement_read else "the paper's constant not compared"))
    rule = (f"not reproduced if the bound is exceeded beyond the Bonferroni margin (alpha = {evidence.alpha:g}) or "
            f"nowhere non-trivial, if the exact law is rejected, or if the bound at t = 1 - 1e-6 is not below "
            f"{evidence.level:g}; otherwise partly reproduced (our reconstruction checked, the paper's exact "
            f"statement unreadable), reproduced only once the paper's statement is compared")
    return Finding("concentration", verdict, number, rule)


def concentration_finding(law: LawChecks, bound: BoundChecks, spec: ConcentrationSpec) -> Finding:
    """The finding on ``concentration`` for this run (:func:`concentration_rule` on the checks)."""
    return concentration_rule(ConcentrationEvidence.from_checks(law, bound, spec))


# --- (c)-(h) what the figures and tables show ------------------------------------------------------


def _crossing(times: np.ndarray, values: pd.Series | np.ndarray, level: float) -> float:
    """The time from which a falling probability stays at or below ``level`` (:func:`fmlib.stats.crossing_time`):
    ``-inf`` / ``+inf`` when censored (before the first / after the last time of the grid)."""
    return float(crossing_time(times, np.asarray(values), level, falling=True, log_values=True))


def time_text(t: float) -> str:
    """A crossing time for a table or the prose: 3 decimals, or a dash where it is censored."""
    return f"{t:.3f}" if math.isfinite(t) else DASH


def _exact_time(delta: float, n: int, level: float) -> float:
    """The time at which the exact simplex probability reaches ``level``."""
    return float(brentq(lambda t: simplex_outweigh_probability(t, delta, n) - level, 1e-9, 1 - 1e-12))


@dataclass(frozen=True)
class PlaneSummary:
    """The plane (t, delta) of simplices: level sets of the bound, the exact value and the frequency."""

    shown: np.ndarray
    t_star_shown: np.ndarray
    measured_t: np.ndarray
    exact_t: np.ndarray
    bound_t: np.ndarray

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        shift = self.bound_t - self.exact_t
        seen = np.isfinite(self.measured_t)
        gap = float(np.abs(self.measured_t[seen] - self.exact_t[seen]).max()) if seen.any() else math.nan
        return {
            "plane_t_star_first": float(self.t_star_shown[0]), "plane_t_star_last": float(self.t_star_shown[-1]),
            "plane_delta_first": float(self.shown[0]), "plane_delta_last": float(self.shown[-1]),
            "plane_shift_max": float(shift.max()), "plane_shift_min": float(shift.min()),
            "plane_measured_vs_exact": gap, "plane_n_censored": int((~seen).sum()),
        }


def plane_summary(measured: ConcentrationGrid) -> PlaneSummary:
    """Section (c) and (f): the times at which the bound (:func:`fmlib.theory.concentration_time`), the exact
    simplex probability and the measured frequency fall to ``level``, for each separation of the plane."""
    spec = measured.spec
    plane, separations = measured.block("plane"), spec.separations
    picks = np.unique(np.linspace(0, len(separations) - 1, min(4, len(separations))).round().astype(int))
    shown = separations[picks]
    return PlaneSummary(
        shown=shown, t_star_shown=np.asarray(concentration_time(shown, spec.n_simplex, level=spec.level)),
        measured_t=np.array([_crossing(spec.times, plane[np.isclose(plane["delta"], delta)]["p"], spec.level)
                             for delta in separations]),
        exact_t=np.array([_exact_time(delta, spec.n_simplex, spec.level) for delta in separations]),
        bound_t=np.asarray(concentration_time(separations, spec.n_simplex, level=spec.level)),
    )


@dataclass(frozen=True)
class DimsSummary:
    """The fixed simplex in every d: the gap between dimensions and the distance to the exact value."""

    gap: float
    gap_t: float
    gap_se: float
    max_z: float
    table: pd.DataFrame

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        return {"dims_gap": self.gap, "dims_gap_t": self.gap_t, "dims_gap_se": self.gap_se, "dims_max_z": self.max_z}


def normal_regime(exact: pd.Series, n_draws: int) -> pd.Series:
    """Where :math:`M p (1 - p) \\ge 5`, so that a standard error describes the spread of a frequency."""
    return n_draws * exact * (1 - exact) >= 5


def dims_summary(measured: ConcentrationGrid) -> DimsSummary:
    """Section (d): the curves of the simplex in every d against each other and against the exact value (z-scores
    only where :func:`normal_regime`)."""
    spec = measured.spec
    sweep = measured.block("d")
    wide = sweep.pivot(index="t", columns="d", values="p")
    gap_per_t = wide.max(axis=1) - wide.min(axis=1)
    t_gap = gap_per_t.idxmax()
    exact_at_gap = float(simplex_outweigh_probability(t_gap, spec.delta_sweep, spec.n_dims_points))
    z = ((sweep["p"] - sweep["exact"]) / standard_error(sweep["exact"], spec.n_draws))
    z = z.where(normal_regime(sweep["exact"], spec.n_draws)).abs()
    per_d = (sweep.assign(err=(sweep["p"] - sweep["exact"]).abs(), z=z)
             .groupby("d").agg(delta_min=("delta_min", "first"), err=("err", "max"), z=("z", "max")).reset_index())
    gaps = [float(np.abs(wide[d].to_numpy()[:, None] - wide.to_numpy()).max()) for d in per_d["d"]]
    table = pd.DataFrame({
        "d": per_d["d"], "separation δ": per_d["delta_min"].map(_number),
        "largest |frequency − exact|": per_d["err"].map(lambda v: _number(v, ".4f")),
        "largest |z|, where M p (1 − p) ≥ 5": per_d["z"].map(lambda v: _number(v, ".2f")),
        "largest gap to another d": [_number(g, ".4f") for g in gaps],
    })
    return DimsSummary(gap=float(gap_per_t.max()), gap_t=float(t_gap),
                       gap_se=float(math.sqrt(2) * standard_error(exact_at_gap, spec.n_draws)),
                       max_z=float(per_d["z"].max()), table=table)


@dataclass(frozen=True)
class SlackSummary:
    """The slack of the bound: on simplices against the exact value, on uneven data against the frequency."""

    simplices: pd.DataFrame
    uneven: pd.DataFrame
    max_ratio: float
    max_ratio_n: int
    at_t_star_max: float
    digits: dict[str, float]

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        return {
            "slack_max_ratio": self.max_ratio, "slack_max_ratio_n": self.max_ratio_n,
            "slack_at_tstar_max": self.at_t_star_max, "digits_t_bound": self.digits["bound"],
            "digits_t_union": self.digits["union"], "digits_t_measured": self.digits["measured"],
            "digits_t_union_text": time_text(self.digits["union"]),
            "digits_t_measured_text": time_text(self.digits["measured"]),
            "slack_dashes": dash_count(self.simplices, self.uneven),
        }


def uneven_sets(measured: ConcentrationGrid) -> list[tuple[str, pd.DataFrame]]:
    """The data sets whose distances vary, as the slack figure shows them: digits, Gaussian in the extreme d."""
    gauss_dims = measured.spec.gauss_dims
    sets = [("digits", measured.block("digits"))]
    gauss = measured.block("gauss")
    return sets + [(f"Gaussian, d = {d}", gauss[gauss["d"] == d]) for d in sorted({min(gauss_dims), max(gauss_dims)})]


def slack_summary(measured: ConcentrationGrid) -> SlackSummary:
    """Section (e): the ratio bound / exact on simplices of N points (largest where the bound is below 1, and at
    the exact crossing time), and the crossing times of the bound, of the union with each pair's distance and of
    the frequency on data whose distances vary (censored times shown as a dash)."""
    spec = measured.spec
    sweep, fine = measured.block("N"), spec.fine_t[1:]
    rows, ratios, at_star = [], [], []
    for n in sorted(sweep["N"].unique()):
        part = sweep[sweep["N"] == n]
        bound_fine = concentration_bound(fine, spec.delta_sweep, n)
        exact_fine = simplex_outweigh_probability(fine, spec.delta_sweep, n)
        ratio_fine = np.where(bound_fine < 1, bound_fine / np.maximum(exact_fine, 1e-300), np.nan)
        informative = bool(np.isfinite(ratio_fine).any())  # the bound is below 1 somewhere on the fine grid
        worst = int(np.nanargmax(ratio_fine)) if informative else 0
        t_exact = _exact_time(spec.delta_sweep, n, spec.level)
        ratios.append(float(np.nanmax(ratio_fine)) if informative else math.nan)
        at_star.append(float(concentration_bound(t_exact, spec.delta_sweep, n) / spec.level))
        rows.append({
            "data": f"simplex, N = {n}",
            "t* of the bound": time_text(float(concentration_time(spec.delta_sweep, n, level=spec.level))),
            "t* exact": time_text(t_exact), "t* measured": time_text(_crossing(spec.times, part["p"], spec.level)),
            "bound / exact at t* exact": _number(at_star[-1]), "largest bound / exact (bound < 1)": _number(ratios[-1]),
            "at t": _number(fine[worst] if informative else math.nan, ".3f"),
        })
    uneven, digits = [], {}
    for label, part in uneven_sets(measured):
        times = {
            "bound": float(concentration_time(part["delta_min"].iloc[0], int(part["N"].iloc[0]), level=spec.level)),
            "union": _crossing(spec.times, part["union"], spec.level),
            "measured": _crossing(spec.times, part["p"], spec.level),
        }
        if label == "digits":
            digits = times
        uneven.append({"data": label, "N": int(part["N"].iloc[0]), "separation δ": _number(part["delta_min"].iloc[0]),
                       "t* of the bound (δ)": time_text(times["bound"]),
                       "t* of the union (each pair's distance)": time_text(times["union"]),
                       "t* measured": time_text(times["measured"])})
    return SlackSummary(simplices=pd.DataFrame(rows), uneven=pd.DataFrame(uneven),
                        max_ratio=float(np.max(ratios)),
                        max_ratio_n=int(sorted(sweep["N"].unique())[int(np.argmax(ratios))]),
                        at_t_star_max=max(at_star), digits=digits)


SIMPLEX_GAP_LEVELS = (0.9, 0.5, 0.1)
"""The probabilities at which :func:`simplex_gap` compares a measured curve with the simplex's."""

SIMPLEX_GAP_TOLERANCE = 1.1
r"""A curve against :math:`s \times` median distance *falls on* the simplex's when :func:`simplex_gap` is within
this factor of 1 (10%: the spacing of the default time grid in :math:`\log s` is about 0.1)."""


def simplex_gap(times: np.ndarray, p: pd.Series | np.ndarray, median: float, n: int,
                levels: Sequence[float] = SIMPLEX_GAP_LEVELS) -> float:
    r"""How far a measured probability curve, drawn against :math:`u = s \times` median distance, lies from
    the exact curve of a regular simplex of the same N drawn against :math:`u = s\delta`.

    At each level :math:`P` of ``levels``, the ratio :math:`u_{\text{measured}}(P) / u_{\text{simplex}}(P)` of the
    values of u at which the falling curves reach P (:func:`_crossing` on the measured one, with
    :math:`u = s(t)` times ``median``); returns the ratio farthest from 1 in :math:`|\log|`: above 1 when the
    measured curve lies to the right (concentrates later). ``inf`` when a measured crossing is censored. Levels
    at or above :math:`1 - 1/N`, the simplex's probability as :math:`s \to 0` (ties), are skipped.
    """
    worst = 1.0
    for level in (level for level in levels if level < 1 - 1 / n):
        t = _crossing(times, p, level)
        if not math.isfinite(t):
            return math.inf
        ratio = float(time_to_snr(t)) * median / float(time_to_snr(_exact_time(1.0, n, level)))
        worst = ratio if abs(math.log(ratio)) > abs(math.log(worst)) else worst
    return worst


def _dims_text(dims: Sequence[object]) -> str:
    """``"2"``, ``"2 and 8"``, ``"2, 8 and 32"``, or ``"none"``."""
    dims = [str(d) for d in dims]
    return "none" if not dims else dims[0] if len(dims) == 1 else f"{', '.join(dims[:-1])} and {dims[-1]}"


@dataclass(frozen=True)
class GaussSummary:
    r"""Random Gaussian data, fresh in each d and embedded from the smallest: separations and concentration times.

    ``fresh`` and ``embedded`` have a column ``simplex gap`` (:func:`simplex_gap`: how far the curve against
    :math:`s \times` median distance lies from the simplex's exact curve, as a factor in u).
    """

    fresh: pd.DataFrame
    embedded: pd.DataFrame
    simplex_t: pd.Series
    table: pd.DataFrame

    def on_simplex(self) -> tuple[list[int], list[int]]:
        """The fresh d whose curve falls on the simplex's (within :data:`SIMPLEX_GAP_TOLERANCE`), and the others."""
        gap = np.abs(np.log(self.fresh["simplex gap"].to_numpy(np.float64)))
        close = gap <= math.log(SIMPLEX_GAP_TOLERANCE)
        dims = self.fresh["d"].astype(int).tolist()
        return [d for d, c in zip(dims, close, strict=True) if c], [d for d, c in zip(dims, close, strict=True)
                                                                    if not c]

    def records(self) -> dict[str, Any]:
        """The numbers the prose quotes, under their glue keys."""
        fresh, embedded = self.fresh, self.embedded
        seen = embedded["t measured"][np.isfinite(embedded["t measured"])]
        return {
            "gauss_t_low_d": float(fresh["t measured"].iloc[0]), "gauss_t_high_d": float(fresh["t measured"].iloc[-1]),
            "gauss_t_low_d_text": time_text(fresh["t measured"].iloc[0]),
            "gauss_t_high_d_text": time_text(fresh["t measured"].iloc[-1]),
            "gauss_d_low": int(fresh["d"].iloc[0]), "gauss_d_high": int(fresh["d"].iloc[-1]),
            "embedded_t_range": float(seen.max() - seen.min()) if len(seen) else math.nan,
            "gauss_ratio_high_d": float(fresh["delta_min"].iloc[-1] / fresh["delta_median"].iloc[-1]),
            "gauss_ratio_low_d": float(fresh["delta_min"].iloc[0] / fresh["delta_median"].iloc[0]),
            "gauss_on_simplex_dims": _dims_text(self.on_simplex()[0]),
            "gauss_off_simplex_dims": _dims_text(self.on_simplex()[1]),
            "gauss_gap_low_d": float(fresh["simplex gap"].iloc[0]),
            "gauss_gap_tolerance_percent": round(100 * (SIMPLEX_GAP_TOLERANCE - 1)),
            "gauss_gap_levels": _dims_text([f"{level:g}" for level in SIMPLEX_GAP_LEVELS]),
            "gauss_dashes": dash_count(self.table),
        }


def gauss_summary(measured: ConcentrationGrid) -> GaussSummary:
    """Section (g): separations and crossing times of Gaussian data, fresh in each d and embedded from the
    smallest, and the measured crossing times of the fixed simplex of (d) (censored: +-inf, a dash in the table)."""
    spec = measured.spec
    d0, frames = min(spec.gauss_dims), {}
    for block in ("gauss", "embedded"):
        rows = []
        for d in spec.gauss_dims:
            part = measured.rows[(measured.rows["block"] == block) & (measured.rows["d"] == d)]
            rows.append({
                "d": d, "delta_min": part["delta_min"].iloc[0], "delta_median": part["delta_median"].iloc[0],
                "sqrt(2d)": math.sqrt(2 * (d if block == "gauss" else d0)),
                "t measured": _crossing(spec.times, part["p"], spec.level),
                "t bound": float(concentration_time(part["delta_min"].iloc[0], spec.n_gauss, level=spec.level)),
                "simplex gap": simplex_gap(spec.times, part["p"], float(part["delta_median"].iloc[0]), spec.n_gauss),
            })
        frames[block] = pd.DataFrame(rows)
    table = pd.concat([frames["gauss"].assign(data="fresh N(0, I_d)"),
                       frames["embedded"].assign(data=f"N(0, I_{d0}) embedded")], ignore_index=True)
    table = pd.DataFrame({
        "data": table["data"], "d": table["d"], "smallest distance δ": table["delta_min"].map(_number),
        "median distance": table["delta_median"].map(_number), "√(2d)": table["sqrt(2d)"].map(_number),
        "t* measured": table["t measured"].map(time_text), "t* of the bound": table["t bound"].map(time_text),
        "off the simplex curve (×)": table["simplex gap"].map(_number),
    })
    sweep = measured.block("d")
    simplex_t = pd.Series({d: _crossing(spec.times, sweep[sweep["d"] == d]["p"], spec.level)
                           for d in sorted(sweep["d"].unique())})
    return GaussSummary(fresh=frames["gauss"], embedded=frames["embedded"], simplex_t=simplex_t, table=table)


def digits_records(measured: ConcentrationGrid) -> dict[str, float]:
    """The separation and the median distance of the digits."""
    digits = measured.block("digits")
    return {"digits_delta_min": float(digits["delta_min"].iloc[0]),
            "digits_delta_median": float(digits["delta_median"].iloc[0])}
