r"""When does the regression target of flow matching stop being stochastic? Cosine curves, t* and its law.

Bertrand et al. (arXiv 2506.03719, Fig. 1) draw B pairs :math:`(x_0, x_1)`, :math:`x_0 \sim N(0, I_d)`,
:math:`x_1` uniform over the n training points, and follow along a grid of times the cosine

.. math::

    \cos_b(t) = \cos\big(u^*(x_t, t),\, x_1 - x_0\big), \qquad x_t = (1 - t) x_0 + t x_1,

between the optimal field (:mod:`fmlib.closed_form`) and the conditional target, computed by
:func:`fmlib.metrics.cosine_to_target`. When the posterior over :math:`x_1` has collapsed onto the
point the path came from, :math:`u^* = x_1 - x_0` and the cosine is 1: the target is deterministic.
Their Fig. 1c plots the fraction of pairs above 0.9,

.. math:: F(t) = \frac1B \sum_b \mathbb{1}[\cos_b(t) > \theta], \qquad \theta = 0.9,

against t. This module measures it (:func:`cosine_curves`, :func:`refine_grid`,
:func:`measure_point`), defines the critical time :math:`t^*` at which :math:`F` reaches one half
with a bootstrap interval over the pairs (:func:`critical_time`), and fits laws for :math:`t^*(d, n)`
(:func:`fit_law`, and :func:`fit_exponents` for separate powers of :math:`\log n` and d). Times are
handled through the signal-to-noise ratio of the path,

.. math:: s = \frac{t}{1 - t}, \qquad t = \frac{s}{1 + s},

on which grids are geometric (fine near t = 0) and interpolation is linear in :math:`\log s`.

Definition of :math:`t^*` (ours). :math:`F` need not be monotone: at t = 0, :math:`u^* = \bar y - x_0`
(the data mean) is already close in angle to :math:`x_1 - x_0` for training points close to the
mean relative to the noise (:func:`initial_alignment`), and this alignment fades before the
posterior concentrates. :math:`t^*` is therefore the start of the *last* run of the grid on which
:math:`F \ge 1/2` (the last upward crossing), interpolated in :math:`\log s`; when :math:`F` is
monotone it is where F first reaches one half. It is left-censored when :math:`F \ge 1/2` on the
whole grid and right-censored when :math:`F < 1/2` at its last time.

Laws (:data:`LAWS`), both linear in :math:`\log s^*`:

* ``"power"``: :math:`\frac{t^*}{1 - t^*} = c\, (\log n / d)^\alpha`, the form suggested by the
  :math:`\log(n)/d` scaling of the collapse time of Biroli et al. for Gaussian mixtures (as cited by
  Bertrand et al.).
* ``"capacity"``: :math:`\frac{t^*}{1 - t^*} = c\, (n^{2/d} - 1)^\alpha` (*reconstructed*, our own):
  with :math:`y = x_t / t = x_1 + x_0 / s` the path is a Gaussian channel of signal-to-noise ratio
  :math:`s^2 \sigma^2` for data of variance :math:`\sigma^2` per coordinate, and n random Gaussian
  training points form a random code of rate :math:`\log(n)/d` per dimension. Shannon's capacity
  :math:`\frac12 \log(1 + s^2 \sigma^2)` (Shannon 1948) exceeds the rate, so the posterior can single
  out :math:`x_1`, when :math:`s^2 \sigma^2 > n^{2/d} - 1` (a random-coding heuristic for
  :math:`d \to \infty` at fixed rate, not a theorem): the prediction is
  :math:`\alpha = 1/2`, :math:`c = 1/\sigma` for isotropic Gaussian data in high dimension. For
  :math:`\log(n)/d \to 0`, :math:`n^{2/d} - 1 \approx 2 \log(n)/d`, the power law with
  :math:`\alpha = 1/2`; for small d it grows like :math:`n^{1/d}`, the nearest-neighbour spacing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from fmlib._checks import (
    FloatArray,
    check_choice,
    check_data,
    check_float,
    check_positive_int,
    check_times,
    resolve_device,
)
from fmlib.closed_form import ClosedFormField
from fmlib.data import DATASETS
from fmlib.metrics import cosine_to_target
from fmlib.path import draw_pairs, log_snr, snr_grid, snr_to_time, time_to_snr
from fmlib.stats import bootstrap_lstsq, crossing_time, crossing_times, final_run_start, percentile_interval

__all__ = [
    "LAWS",
    "CosineCurves",
    "CriticalTime",
    "Exponents",
    "LawFit",
    "PointMeasurement",
    "cosine_curves",
    "critical_time",
    "family_grid",
    "fit_exponents",
    "fit_law",
    "initial_alignment",
    "law_feature",
    "measure_point",
    "refine_grid",
]


LAWS = ("power", "capacity")
"""The laws :func:`fit_law` knows (see the module docstring)."""

PAIR_SEED_OFFSET = 1_000_003
"""The pairs of a point are drawn with seed ``seed + PAIR_SEED_OFFSET``, its data with ``seed``."""


@dataclass(frozen=True)
class CosineCurves:
    r"""Cosines of B pairs at T times: ``cosines[k, b]`` is :math:`\cos_b(t_k)`.

    Attributes:
        ts: (T,) float64 times, strictly increasing, in (0, 1).
        cosines: (T, B) float64.
    """

    ts: FloatArray
    cosines: FloatArray

    @property
    def batch(self) -> int:
        """B, the number of pairs."""
        return int(self.cosines.shape[1])

    def fraction_above(self, threshold: float = 0.9) -> FloatArray:
        r""":math:`F(t_k) = \frac1B \sum_b \mathbb{1}[\cos_b(t_k) > \theta]`, shape (T,)."""
        return (self.cosines > threshold).mean(axis=1)

    def merged(self, other: CosineCurves) -> CosineCurves:
        """The union of two measurements of the same pairs, sorted by time (duplicates kept once)."""
        if other.batch != self.batch:
            raise ValueError(f"cannot merge curves of {self.batch} and {other.batch} pairs")
        ts = np.concatenate([self.ts, other.ts])
        cosines = np.concatenate([self.cosines, other.cosines])
        ts, first = np.unique(ts, return_index=True)
        return CosineCurves(ts=ts, cosines=cosines[first])


def cosine_curves(field: object, x0: Tensor, x1: Tensor, ts: Sequence[float] | FloatArray,
                  *, progress: bool = False) -> CosineCurves:
    r"""The cosines :math:`\cos_b(t)` of the pairs ``(x0, x1)`` (B, d) at the times ``ts`` in (0, 1).

    One call of :func:`fmlib.metrics.cosine_to_target` per time (for :class:`ClosedFormField`, the
    cost of two (B, n, d) matrix products each).

    Returns:
        :class:`CosineCurves` with ``cosines`` of shape (T, B), float64 on the CPU.
    """
    grid = check_times(ts, include_start=False, include_end=False).numpy()
    rows = []
    iterator = grid
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(grid, desc="cosine curves", leave=False)
    for t in iterator:
        rows.append(cosine_to_target(field, x0, x1, float(t)).double().cpu().numpy())
    return CosineCurves(ts=grid, cosines=np.stack(rows))








def refine_grid(curves: CosineCurves, points: int = 8, *, threshold: float = 0.9, level: float = 0.5) -> FloatArray:
    r"""Times to add so that the crossing of :math:`F` through ``level`` is resolved.

    ``points`` times geometric in :math:`s` strictly inside the bracket :math:`(t_{k-1}, t_k)` of the
    crossing (:func:`crossing_time`), and ``points // 2`` inside each neighbouring interval, where
    bootstrap resamples may cross. Empty when the crossing is censored.
    """
    points = check_positive_int(points, "points")
    k = int(final_run_start(curves.fraction_above(threshold) >= level))
    if k in (0, curves.ts.size):
        return np.empty(0)
    log_s = np.log(time_to_snr(curves.ts))
    new = []
    for left, count in ((k - 2, points // 2), (k - 1, points), (k, points // 2)):
        if 0 <= left < log_s.size - 1 and count > 0:
            inner = np.linspace(log_s[left], log_s[left + 1], count + 2)[1:-1]
            new.append(snr_to_time(np.exp(inner)))
    return np.sort(np.concatenate(new)) if new else np.empty(0)


@dataclass(frozen=True)
class CriticalTime:
    r"""The critical time :math:`t^*` of one measurement, with its bootstrap interval over the pairs.

    Attributes:
        t_star: :math:`t^*` (``-inf`` / ``+inf`` when censored, see :func:`crossing_time`).
        low, high: the percentile interval of the bootstrap replicates at ``confidence``.
        replicates: (R,) bootstrap replicates of :math:`t^*` (with +-inf for censored ones).
        confidence: the level of the interval.
        width: :math:`t_{0.9} - t^*`, from the time F reaches ``level`` to the time it reaches 0.9
            (last upward crossings): the sharpness of the transition (NaN when either is censored).
    """

    t_star: float
    low: float
    high: float
    replicates: FloatArray = field(repr=False)
    confidence: float
    width: float

    @property
    def censored(self) -> str:
        """``"left"``, ``"right"`` or ``"none"``."""
        if self.t_star == -math.inf:
            return "left"
        if self.t_star == math.inf:
            return "right"
        return "none"


def critical_time(
    curves: CosineCurves,
    *,
    threshold: float = 0.9,
    level: float = 0.5,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CriticalTime:
    r""":math:`t^*`, where the fraction of pairs with cosine above ``threshold`` reaches ``level``, with a bootstrap CI.

    The bootstrap resamples the B pairs with replacement ``n_boot`` times, recomputes :math:`F` on the
    same grid and its crossing (:func:`crossing_time`), and reports the percentile interval
    (nearest-rank, so censored replicates at +-inf are handled). It measures the error due to the
    finite number of pairs at this training set, not the variation between training sets.
    """
    threshold = check_float(threshold, "threshold", low=-1.0, high=1.0)
    level = check_float(level, "level", low=0.0, high=1.0, low_open=True)
    n_boot = check_positive_int(n_boot, "n_boot")
    confidence = check_float(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    above = (curves.cosines > threshold).astype(np.float64)  # (T, B)
    fraction = above.mean(axis=1)
    t_star = crossing_time(curves.ts, fraction, level)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, curves.batch, curves.batch), minlength=curves.batch)
                       for _ in range(n_boot)]).astype(np.float64)  # (R, B)
    replicates = crossing_times(curves.ts, counts @ above.T / curves.batch, level)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail], method="inverted_cdf")
    t_hi = crossing_time(curves.ts, fraction, max(level, 0.9))
    width = t_hi - t_star if math.isfinite(t_hi) and math.isfinite(t_star) else math.nan
    return CriticalTime(t_star, float(low), float(high), replicates, confidence, float(width))


def initial_alignment(data: Tensor, threshold: float = 0.9) -> float:
    r"""The fraction of training points whose cosine is above ``threshold`` at t = 0, in high dimension.

    At t = 0, :math:`u^* = \bar y - x_0` and the target is :math:`y_k - x_0`. With
    :math:`\|x_0\|^2 \approx d` and :math:`x_0` nearly orthogonal to fixed vectors (d large),

    .. math::

        \cos_k(0) \approx \frac{d + \langle \bar y, y_k\rangle}{\sqrt{(d + \|\bar y\|^2)(d + \|y_k\|^2)}},

    which is above 0.9 for points close to the mean relative to the noise. This is the floor the
    fraction :math:`F` starts from (*reconstructed*, ours); it is 0 for centred isotropic data of
    variance above :math:`1/0.81 - 1 \approx 0.23` per coordinate.
    """
    check_data(data)
    y = data.double()
    d = y.shape[1]
    mean = y.mean(dim=0)
    cos0 = (d + y @ mean) / torch.sqrt((d + mean @ mean) * (d + (y * y).sum(dim=1)))
    return float((cos0 > threshold).double().mean())


def law_feature(law: str, n: float | FloatArray, d: float | FloatArray) -> FloatArray:
    r"""The regressor of a law: :math:`\log(\log n / d)` (``"power"``) or :math:`\log(n^{2/d} - 1)` (``"capacity"``)."""
    if law not in LAWS:
        raise ValueError(f"law={law!r} is not one of {', '.join(LAWS)}")
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if np.any(n < 2) or np.any(d < 1):
        raise ValueError("the laws need n >= 2 training points and d >= 1")
    rate = np.log(n) / d
    return np.log(rate) if law == "power" else np.log(np.expm1(2.0 * rate))


def _usable(n: FloatArray, d: FloatArray, t: FloatArray) -> NDArray[np.bool_]:
    if not (n.shape == d.shape == t.shape) or n.ndim != 1:
        raise ValueError(f"n, d and t_star must be 1-D of one length, got {n.shape}, {d.shape}, {t.shape}")
    usable = np.isfinite(t) & (t > 0) & (t < 1)
    if usable.sum() < 3:
        raise ValueError(f"need at least 3 points with an uncensored t* to fit a law, got {int(usable.sum())}")
    return usable






@dataclass(frozen=True)
class LawFit:
    r"""A fitted law :math:`\log\frac{t^*}{1 - t^*} = \log c + \alpha\, \mathrm{feature}(n, d) [+ \gamma \log d]`.

    The feature is :func:`law_feature`; the :math:`\gamma \log d` term is there only when the fit
    was asked for it (``with_log_d``), as a test that :math:`t^*` depends on (n, d) through the
    feature alone (:math:`\gamma = 0`).

    Attributes:
        law: ``"power"`` or ``"capacity"``.
        c, alpha: least-squares estimates on the points used.
        c_interval, alpha_interval: bootstrap percentile intervals at ``confidence``.
        gamma, gamma_interval: the coefficient of :math:`\log d` and its interval (NaN without it).
        n, d, t_star: (m,) the points used (censored ones left out).
        residuals: (m,) :math:`\log s^*` measured minus fitted.
        rmse: root-mean-square residual in :math:`\log s^*`.
        left_out: number of points left out because :math:`t^*` was censored.
        boot: (R, 2 or 3) bootstrap replicates of :math:`(\log c, \alpha[, \gamma])`.
        confidence: the level of the intervals.
    """

    law: str
    c: float
    alpha: float
    c_interval: tuple[float, float]
    alpha_interval: tuple[float, float]
    gamma: float
    gamma_interval: tuple[float, float]
    n: FloatArray = field(repr=False)
    d: FloatArray = field(repr=False)
    t_star: FloatArray = field(repr=False)
    residuals: FloatArray = field(repr=False)
    rmse: float
    left_out: int
    boot: FloatArray = field(repr=False)
    confidence: float

    def _design(self, n: float | FloatArray, d: float | FloatArray) -> FloatArray:
        x = np.atleast_1d(law_feature(self.law, n, d))
        columns = [np.ones_like(x), x]
        if self.boot.shape[1] == 3:
            columns.append(np.log(np.broadcast_to(np.asarray(d, dtype=np.float64), x.shape)))
        return np.stack(columns, axis=-1)

    def log_snr(self, n: float | Sequence[float] | FloatArray, d: float | Sequence[float] | FloatArray) -> FloatArray:
        r"""The law's :math:`\log s^* = \log\frac{t^*}{1 - t^*}` at the points (n, d) (broadcast), as an array."""
        coef = np.array([math.log(self.c), self.alpha, self.gamma])
        design = self._design(np.asarray(n, dtype=np.float64), np.asarray(d, dtype=np.float64))
        return design @ coef[: design.shape[-1]]

    def predict(self, n: float, d: float) -> tuple[float, float, float]:
        """Predicted :math:`t^*` at (n, d) and its bootstrap percentile interval: ``(t, low, high)``."""
        row = self._design(n, d)[0]
        coef = np.array([math.log(self.c), self.alpha, self.gamma])[: row.size]
        low, high = percentile_interval(self.boot @ row, self.confidence)
        return (float(snr_to_time(math.exp(coef @ row))), float(snr_to_time(math.exp(low))),
                float(snr_to_time(math.exp(high))))


def fit_law(
    law: str,
    n: Sequence[float] | FloatArray,
    d: Sequence[float] | FloatArray,
    t_star: Sequence[float] | FloatArray,
    replicates: Sequence[Sequence[float]] | FloatArray | None = None,
    *,
    with_log_d: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> LawFit:
    r"""Fit :math:`\log\frac{t^*}{1-t^*} = \log c + \alpha\, \mathrm{feature}(n, d)` by least squares, with intervals.

    Points whose :math:`t^*` is censored (+-inf) or outside (0, 1) are left out. The intervals come
    from a two-level bootstrap: each replicate resamples the m grid points with replacement (which
    carries the misfit of the law into the interval) and, when ``replicates`` (m, R) are given (the
    pair-bootstrap replicates of each :math:`t^*`, :class:`CriticalTime`), replaces each point's
    :math:`t^*` by one of its replicates (which carries the measurement error); censored
    replicates are dropped. With ``with_log_d``, a term :math:`\gamma \log d` is fitted too.

    Raises:
        ValueError: fewer than 3 usable points, or an unknown law.
    """
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    t = np.asarray(t_star, dtype=np.float64)
    usable = _usable(n, d, t)
    n_boot = check_positive_int(n_boot, "n_boot")
    x = law_feature(law, n[usable], d[usable])
    columns = [np.ones_like(x), x] + ([np.log(d[usable])] if with_log_d else [])
    rep = None if replicates is None else log_snr(np.asarray(replicates, dtype=np.float64)[usable])
    coef, residuals, boot = bootstrap_lstsq(np.stack(columns, axis=1), log_snr(t[usable]), rep, n_boot, seed)
    c_low, c_high = percentile_interval(boot[:, 0], confidence)
    return LawFit(
        law=law, c=float(math.exp(coef[0])), alpha=float(coef[1]),
        c_interval=(math.exp(c_low), math.exp(c_high)), alpha_interval=percentile_interval(boot[:, 1], confidence),
        gamma=float(coef[2]) if with_log_d else math.nan,
        gamma_interval=percentile_interval(boot[:, 2], confidence) if with_log_d else (math.nan, math.nan),
        n=n[usable], d=d[usable], t_star=t[usable], residuals=residuals,
        rmse=float(np.sqrt(np.mean(residuals**2))), left_out=int((~usable).sum()), boot=boot,
        confidence=confidence,
    )


@dataclass(frozen=True)
class Exponents:
    r"""Separate exponents of :math:`\log n` and d: :math:`\frac{t^*}{1-t^*} = a\, (\log n)^{\beta_n}\, d^{-\beta_d}`.

    The power law in :math:`\log(n)/d` is the case :math:`\beta_n = \beta_d`.

    Attributes:
        beta_n, beta_d: least-squares estimates.
        beta_n_interval, beta_d_interval, difference_interval: bootstrap percentile intervals of
            :math:`\beta_n`, :math:`\beta_d` and :math:`\beta_n - \beta_d`.
        points: number of points used.
    """

    beta_n: float
    beta_d: float
    beta_n_interval: tuple[float, float]
    beta_d_interval: tuple[float, float]
    difference_interval: tuple[float, float]
    points: int


def fit_exponents(
    n: Sequence[float] | FloatArray,
    d: Sequence[float] | FloatArray,
    t_star: Sequence[float] | FloatArray,
    replicates: Sequence[Sequence[float]] | FloatArray | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Exponents:
    r"""Fit :math:`\log\frac{t^*}{1-t^*} = \log a + \beta_n \log\log n - \beta_d \log d`, bootstrap as :func:`fit_law`.

    Needs points with at least two distinct n and two distinct d.
    """
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    t = np.asarray(t_star, dtype=np.float64)
    usable = _usable(n, d, t)
    if np.any(n[usable] < 2):
        raise ValueError("the exponents need n >= 2")
    design = np.stack([np.ones(int(usable.sum())), np.log(np.log(n[usable])), -np.log(d[usable])], axis=1)
    if np.linalg.matrix_rank(design) < 3:
        raise ValueError("the exponents need points with at least two distinct n and two distinct d")
    rep = None if replicates is None else log_snr(np.asarray(replicates, dtype=np.float64)[usable])
    coef, _, boot = bootstrap_lstsq(design, log_snr(t[usable]), rep, check_positive_int(n_boot, "n_boot"), seed)
    return Exponents(
        beta_n=float(coef[1]), beta_d=float(coef[2]),
        beta_n_interval=percentile_interval(boot[:, 1], confidence),
        beta_d_interval=percentile_interval(boot[:, 2], confidence),
        difference_interval=percentile_interval(boot[:, 1] - boot[:, 2], confidence), points=int(usable.sum()),
    )


def family_grid(
    family: str, *, dims: Sequence[int], resolutions: Sequence[int], sizes: Sequence[int],
    max_work: float = math.inf,
) -> list[tuple[int, int]]:
    r"""The (d, n) points of a data family in a sweep over dimensions and sizes, in increasing d then n.

    ``image_patches`` takes :math:`d = 3 r^2` for each resolution r, a family of fixed dimension
    its own d, the others each d of ``dims`` (:meth:`fmlib.data.Dataset.dimensions`). Sizes above a
    family's number of points (:attr:`fmlib.data.Dataset.largest_n`) are replaced by it (once).
    Points with :math:`n d` above
    ``max_work`` (the cost of one closed-form evaluation is proportional to B n d) are left out.
    """
    dataset = DATASETS[check_choice(family, DATASETS, "family")]
    d_values = dataset.dimensions(dims, resolutions)
    largest = dataset.largest_n or math.inf
    n_values = sorted({min(n, largest) for n in sizes})
    return [(d, n) for d in d_values for n in n_values if n * d <= max_work]


@dataclass(frozen=True)
class PointMeasurement:
    r"""Everything measured at one point (family, d, n) of the grid.

    Attributes:
        family, d, n: the data set (:func:`fmlib.data.make_dataset` name), its dimension and size.
        curves: the cosines on the refined grid.
        critical: :math:`t^*` and its interval.
        variance: mean per-coordinate variance of the training set, :math:`\frac1d \sum_j \mathrm{Var}(y_{\cdot j})`.
        initial_alignment: :func:`initial_alignment` of the training set.
        seconds: wall time of the measurement.
    """

    family: str
    d: int
    n: int
    curves: CosineCurves = field(repr=False)
    critical: CriticalTime
    variance: float
    initial_alignment: float
    seconds: float

    def fraction_above(self, threshold: float = 0.9) -> FloatArray:
        """F on the measured grid."""
        return self.curves.fraction_above(threshold)


def measure_point(
    family: str,
    d: int,
    n: int,
    *,
    batch: int = 256,
    seed: int = 0,
    ts: Sequence[float] | FloatArray | None = None,
    refine: int = 8,
    threshold: float = 0.9,
    level: float = 0.5,
    n_boot: int = 1000,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    data_options: dict[str, object] | None = None,
) -> PointMeasurement:
    r"""Cosine curves, :math:`F` and :math:`t^*` for n training points of ``family`` in dimension d.

    The training set is drawn with seed ``seed`` (so the sets of one family and d are nested in
    n for the generated families) and the B pairs with ``seed + PAIR_SEED_OFFSET``; the same
    arguments give the same numbers, in a chapter or in a sweep point. The cosines are computed on
    ``ts`` (default :func:`snr_grid`), then on :func:`refine_grid` ``(refine)`` around the crossing.
    """
    import time

    from fmlib.data import make_dataset

    start = time.perf_counter()
    dev = resolve_device(device)
    data_gen = torch.Generator(device="cpu").manual_seed(seed)
    pair_gen = torch.Generator(device="cpu").manual_seed(seed + PAIR_SEED_OFFSET)
    data = make_dataset(family, n, d=d, generator=data_gen, device=dev, dtype=dtype, **(data_options or {}))
    x0, x1 = draw_pairs(data, batch, generator=pair_gen)
    field_ = ClosedFormField(data)
    grid = snr_grid() if ts is None else ts
    curves = cosine_curves(field_, x0, x1, grid)
    if refine > 0:
        extra = refine_grid(curves, refine, threshold=threshold, level=level)
        extra = extra[~np.isin(extra, curves.ts)]
        if extra.size:
            curves = curves.merged(cosine_curves(field_, x0, x1, extra))
    critical = critical_time(curves, threshold=threshold, level=level, n_boot=n_boot, seed=seed)
    variance = float(data.double().var(dim=0, unbiased=False).mean()) if n > 1 else 0.0
    return PointMeasurement(
        family=family, d=int(data.shape[1]), n=n, curves=curves, critical=critical, variance=variance,
        initial_alignment=initial_alignment(data, threshold), seconds=time.perf_counter() - start,
    )
