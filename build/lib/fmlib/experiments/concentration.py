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
Gaussian law (:func:`fmlib.theory.log_weight_ratio_law`); :func:`binomial_limits` (exact one-sided
Clopper-Pearson limits) and :func:`binomial_pvalue` (exact two-sided test) turn counts into
confidence statements; :func:`level_crossing` reads off the time at which a probability curve falls
below a level. Used by the chapter ``notebooks/02_concentration.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from fmlib._checks import check_data, check_positive_int, check_times
from fmlib.closed_form import ClosedFormField
from fmlib.stats import binomial_pvalue
from fmlib.theory import outweigh_probability

__all__ = [
    "PairAverages",
    "PairLawCheck",
    "PathDraws",
    "draw_on_paths",
    "exact_pair_averages",
    "pair_law_check",
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
