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

The figures of chapter 3 are drawn by :mod:`fmlib.experiments.stochastic_target_figures`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import Tensor

from fmlib._checks import (
    FloatArray,
    check_choice,
    check_data,
    check_field,
    check_float,
    check_positive_int,
    check_times,
    generator_device,
    resolve_device,
)
from fmlib.closed_form import ClosedFormField
from fmlib.data import DATASETS
from fmlib.experiments.verdicts import Finding, Verdict, graded, require
from fmlib.metrics import cosine_to_target
from fmlib.path import draw_pairs, log_snr, snr_grid, snr_to_time, time_to_snr
from fmlib.stats import bootstrap_lstsq, crossing_time, crossing_times, final_run_start, percentile_interval

__all__ = [
    "COLLAPSE_EXPONENT",
    "COLLAPSE_TOLERANCE",
    "FALLS_RHO",
    "GRADING",
    "LAWS",
    "LOSS_RATIO_SMALL",
    "MIN_DIMENSIONS",
    "PAPER_MIN_D",
    "PAPER_TIME",
    "CosineCurves",
    "CriticalTime",
    "Exponents",
    "Falling",
    "Grid",
    "HighD",
    "LawFit",
    "LawFits",
    "LossRatio",
    "LossRatios",
    "PointMeasurement",
    "SetSpread",
    "Settings",
    "Trend",
    "cifar_paragraph",
    "collapse_time_rule",
    "cosine_curves",
    "cosine_high_d_rule",
    "critical_time",
    "dimension_sweep_rule",
    "dimension_trend",
    "falls_by_chance",
    "falls_with_d",
    "family_grid",
    "feature_of_rate",
    "fit_exponents",
    "fit_law",
    "fit_laws",
    "format_time",
    "fraction_at",
    "gaussian_collapse_time",
    "grade",
    "grid_from_sweep",
    "high_d_summary",
    "initial_alignment",
    "law_feature",
    "loss_ratio",
    "losses_equivalence_rule",
    "measure_grid",
    "measure_loss_ratios",
    "measure_point",
    "refine_grid",
    "training_set_spread",
    "widths_table",
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
            (last upward crossings), in t (NaN when either is censored).
        width_log_snr: the same rise measured in log-SNR, :math:`\log s(t_{0.9}) - \log s(t^*)`,
            :math:`s = t / (1 - t)`: the width free of the time parametrisation. Near t = 0 a width
            :math:`\Delta` in :math:`\log s` is :math:`\approx t^* \Delta` in t, so a transition that
            only moves to smaller t narrows in t without changing in log-SNR.
    """

    t_star: float
    low: float
    high: float
    replicates: FloatArray = field(repr=False)
    confidence: float
    width: float
    width_log_snr: float

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
    finite = math.isfinite(t_hi) and math.isfinite(t_star)
    width = t_hi - t_star if finite else math.nan
    width_log_snr = float(log_snr(t_hi) - log_snr(t_star)) if finite else math.nan
    return CriticalTime(t_star, float(low), float(high), replicates, confidence, float(width), width_log_snr)


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
    return feature_of_rate(law, np.log(n) / d)


def feature_of_rate(law: str, rate: FloatArray) -> FloatArray:
    r""":func:`law_feature` as a function of the rate :math:`\log(n)/d`."""
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

    def summary(self, threshold: float = 0.9) -> dict[str, object]:
        """The values a sweep point stores (``notebooks/cosine_point.md``) and :func:`grid_from_sweep` reads back."""
        c = self.critical
        fraction = self.fraction_above(threshold)
        return {
            "t_star": c.t_star, "t_star_low": c.low, "t_star_high": c.high, "censored": c.censored,
            "width": c.width, "width_log_snr": c.width_log_snr, "variance": self.variance,
            "initial_alignment": self.initial_alignment, "fraction_first": float(fraction[0]),
            "measure_seconds": self.seconds, "ts": self.curves.ts.tolist(), "fraction": fraction.tolist(),
            "t_star_replicates": c.replicates.tolist(),
        }


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


# ---------------------------------------------------------------------------------------------------
# The chapter's measurements: one object for its settings, the (family, d, n) grid, the trends with d
# ---------------------------------------------------------------------------------------------------

PAPER_TIME = 0.2
"""Bertrand et al., Fig. 1 caption: on CIFAR-10 "non-stochasticity arises very early (before t = 0.2)"."""

PAPER_MIN_D = 3 * 8**2
"""Their dimension sweep (Fig. 1c) starts at resolution r = 8 (d = 192)."""

FALLS_RHO = -0.5
"""A quantity *falls with d* when its Spearman rank correlation with d is at most this (see :func:`falls_with_d`)."""

MIN_DIMENSIONS = 3
"""Fewest dimensions on which :func:`falls_with_d` decides anything."""


@dataclass
class Settings:
    """The measurement settings of the chapter, and a cache of the points measured with them.

    Attributes:
        batch: B pairs per point; threshold: the cosine threshold; level: the level of :math:`t^*`;
        grid_points: points of the base grid geometric in s from 1e-3 to 1e4; refine: extra times
        around each crossing; n_boot: pair-bootstrap resamples; seed; device.
    """

    batch: int = 256
    threshold: float = 0.9
    level: float = 0.5
    grid_points: int = 15
    refine: int = 6
    n_boot: int = 1000
    seed: int = 0
    device: str = "auto"
    cifar10_dir: str = ""
    _cache: dict[tuple[object, ...], PointMeasurement] = field(default_factory=dict, repr=False, compare=False)

    base_grid_bounds: ClassVar[tuple[float, float]] = (1e-3, 1e4)
    """The ends of the base grid in s = t / (1 - t) (``s_min``, ``s_max`` of ``notebooks/cosine_point.md``)."""

    def base_grid(self) -> FloatArray:
        """The times of every point before refinement: geometric in s from :math:`10^{-3}` to :math:`10^4`."""
        return snr_grid(*self.base_grid_bounds, self.grid_points)

    def measure(self, family: str, d: int, n: int, *, ts: FloatArray | None = None, seed: int | None = None
                ) -> PointMeasurement:
        """:func:`measure_point` with these settings (computed once per family, d, n, seed and grid)."""
        seed = self.seed if seed is None else seed
        grid = self.base_grid() if ts is None else np.asarray(ts, dtype=np.float64)
        key = (family, d, n, seed, grid.tobytes())
        if key not in self._cache:
            options = {"root": self.cifar10_dir} if family == "cifar10" and self.cifar10_dir else None
            self._cache[key] = measure_point(
                family, d, n, batch=self.batch, seed=seed, ts=grid, refine=self.refine, threshold=self.threshold,
                level=self.level, n_boot=self.n_boot, device=self.device, data_options=options,
            )
        return self._cache[key]


def _progress(items: Sequence[object], desc: str, progress: bool) -> Sequence[object]:
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


GRID_COLUMNS = ("family", "d", "n", "t_star", "low", "high", "censored", "width", "width_log_snr", "fraction_first",
                "initial_alignment", "variance", "seconds", "ts", "fraction", "replicates")
_FROM_SUMMARY = {"t_star": "t_star", "low": "t_star_low", "high": "t_star_high", "censored": "censored",
                 "width": "width", "width_log_snr": "width_log_snr", "fraction_first": "fraction_first",
                 "initial_alignment": "initial_alignment", "variance": "variance", "seconds": "measure_seconds",
                 "ts": "ts", "fraction": "fraction", "replicates": "t_star_replicates"}
_FLOATS = ("t_star", "low", "high", "width", "width_log_snr", "fraction_first", "initial_alignment", "variance",
           "seconds")
_ARRAYS = ("ts", "fraction", "replicates")


def _row(family: str, d: int, n: int, summary: dict[str, object]) -> dict[str, object]:
    row: dict[str, object] = {"family": family, "d": int(d), "n": int(n)}
    for column, key in _FROM_SUMMARY.items():
        value = summary.get(key, math.nan)
        if column in _FLOATS:
            value = float(value)
        elif column in _ARRAYS:
            value = np.asarray(value, dtype=np.float64)
        row[column] = value
    return row


@dataclass(frozen=True)
class Grid:
    """The measured points of the (family, d, n) grid.

    Attributes:
        points: one row per point, columns :data:`GRID_COLUMNS` (``ts``, ``fraction`` and
            ``replicates`` hold arrays), sorted by family, d, n.
    """

    points: pd.DataFrame

    def __post_init__(self) -> None:
        if self.points.empty:
            raise ValueError("the grid has no point: check families, dims, resolutions, sizes and max_work")

    @property
    def seconds(self) -> float:
        """Total wall time of the measurements."""
        return float(self.points["seconds"].sum())

    def censored(self, side: str) -> int:
        """Number of points censored on ``side`` (``"left"`` or ``"right"``)."""
        return int((self.points["censored"] == side).sum())

    def of(self, family: str, *, n: int | None = None, min_d: int = 0) -> pd.DataFrame:
        """The points of one family (of one n, with d at least ``min_d``), sorted by d then n."""
        p = self.points
        keep = (p["family"] == family) & (p["d"] >= min_d)
        if n is not None:
            keep &= p["n"] == n
        return p[keep].sort_values(["d", "n"])

    def table(self) -> pd.DataFrame:
        """The table the chapter shows: censored times as a dash (see :func:`format_time`)."""
        p = self.points
        return pd.DataFrame({
            "family": p["family"], "d": p["d"], "n": p["n"], "t*": p["t_star"].map(format_time),
            "95% low": p["low"].map(format_time), "95% high": p["high"].map(format_time),
            "censored": p["censored"], "F at first t": p["fraction_first"].round(3),
            "initial alignment": p["initial_alignment"].round(3),
        })


def format_time(value: float, digits: int = 4) -> str:
    """A time for a table: ``digits`` decimals, or a dash where it is censored (infinite) or missing."""
    return f"{value:.{digits}f}" if math.isfinite(value) else "\N{EN DASH}"


def measure_grid(
    settings: Settings, families: Sequence[str], *, dims: Sequence[int], resolutions: Sequence[int],
    sizes: Sequence[int], max_work: float, curve_n: int, progress: bool = True,
) -> Grid:
    """Every point of :func:`family_grid` for each family, plus the curve points (n = ``curve_n``)."""
    todo = set()
    for family in families:
        todo |= {(family, d, n) for d, n in family_grid(family, dims=dims, resolutions=resolutions, sizes=sizes,
                                                         max_work=max_work)}
        todo |= {(family, d, n) for d, n in family_grid(family, dims=dims, resolutions=resolutions, sizes=[curve_n])}
    rows = [_row(f, d, n, settings.measure(f, d, n).summary(settings.threshold))
            for f, d, n in _progress(sorted(todo), "(family, d, n) grid", progress)]
    return Grid(pd.DataFrame(rows, columns=GRID_COLUMNS).sort_values(["family", "d", "n"]).reset_index(drop=True))


def grid_from_sweep(swept: pd.DataFrame, settings: Settings, families: Sequence[str]) -> Grid:
    """The grid from stored ``cosine_point`` runs (``fmlib.book.store.collect(..., include_lists=True)``).

    Keeps the current runs of the given families measured with this chapter's settings: batch,
    threshold, level and seed (a point swept with several seeds would otherwise enter the grid and
    the law fit several times), and the time grid and bootstrap (``grid_points``, ``refine``,
    ``n_boot``, and ``s_min``, ``s_max`` equal to the chapter's 1e-3 and 1e4), so that every point of
    the grid is the same measurement. Columns a sweep did not store are not compared.

    Raises:
        ValueError: no run matches; the message names each setting whose swept values all differ
            from the chapter's, and the fix.
    """
    wanted = {"batch": settings.batch, "threshold": settings.threshold, "level": settings.level,
              "seed": settings.seed, "grid_points": settings.grid_points, "refine": settings.refine,
              "n_boot": settings.n_boot, "s_min": float(settings.base_grid_bounds[0]),
              "s_max": float(settings.base_grid_bounds[1])}
    current = swept[swept["family"].isin(list(families)) & ~swept["stale"]]
    keep = pd.Series(True, index=current.index)
    for column, value in wanted.items():
        if column in current.columns:
            keep &= np.isclose(current[column].astype(float), float(value), rtol=1e-12, atol=0.0)
    if not keep.any():
        differ = [f"{c} (chapter {v:g}, swept {sorted(set(current[c].tolist()))})" for c, v in wanted.items()
                  if c in current.columns and not np.isclose(current[c].astype(float), float(v)).any()]
        raise ValueError("no current cosine_point run has this chapter's settings and families "
                         f"({', '.join(families)}){'; differing: ' + ', '.join(differ) if differ else ''}. "
                         "Sweep cosine_point with the chapter's values (e.g. -p refine 6), pass the sweep's values "
                         "to this chapter, or use source=compute")
    rows = [_row(r["family"], r["d"], r["n"], r.to_dict()) for _, r in current[keep].iterrows()]
    return Grid(pd.DataFrame(rows, columns=GRID_COLUMNS).sort_values(["family", "d", "n"]).reset_index(drop=True))


@dataclass(frozen=True)
class Falling:
    """The answer of :func:`falls_with_d`: the rank correlation and whether the quantity falls."""

    rho: float
    holds: bool
    dimensions: int


def falls_with_d(d: Sequence[float] | FloatArray, values: Sequence[float] | FloatArray) -> Falling:
    r"""The one rule for "falls with d" in this chapter ("moves to smaller t", "sharpens", "shrinks").

    Over the points with a finite value, the Spearman rank correlation :math:`\rho` of the value
    with d; the quantity falls with d when :math:`\rho \le` :data:`FALLS_RHO` (-0.5) on at least
    :data:`MIN_DIMENSIONS` (3) distinct dimensions. With fewer, :math:`\rho` is NaN and the answer no.
    """
    from scipy.stats import spearmanr

    d = np.asarray(d, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if d.shape != v.shape or d.ndim != 1:
        raise ValueError(f"d and values must be 1-D of one length, got {d.shape} and {v.shape}")
    ok = np.isfinite(v)
    count = int(np.unique(d[ok]).size)
    if count < MIN_DIMENSIONS:
        return Falling(math.nan, False, count)
    if np.ptp(v[ok]) == 0:  # a constant quantity does not fall
        return Falling(0.0, False, count)
    rho = float(spearmanr(d[ok], v[ok]).statistic)
    return Falling(rho, bool(rho <= FALLS_RHO), count)


def falls_by_chance(dimensions: int) -> float:
    r"""How often :func:`falls_with_d` says "falls" for a quantity that does not depend on d at all.

    The probability that :math:`\rho \le` :data:`FALLS_RHO` when every ordering of the values over
    ``dimensions`` distinct d is equally likely (exact, by enumerating the orderings; no ties): 1/2
    over 3 dimensions, 5/24 over 4. The size of the rule, stated beside its verdicts.
    """
    import itertools

    from scipy.stats import spearmanr

    k = check_positive_int(dimensions, "dimensions")
    if not MIN_DIMENSIONS <= k <= 8:
        raise ValueError(f"dimensions must be in [{MIN_DIMENSIONS}, 8] (orderings are enumerated), got {k}")
    ranks = list(itertools.permutations(range(k)))
    return float(np.mean([spearmanr(range(k), r).statistic <= FALLS_RHO + 1e-12 for r in ranks]))


@dataclass(frozen=True)
class Trend:
    r"""How the transition of one family changes with d at fixed n (d at least ``min_d``).

    Attributes:
        family, n, min_d: the points used.
        d, t_star, width_t, width_log_snr: (m,) per dimension; the widths are those of
            :class:`CriticalTime` (the rise of F from one half to 0.9) in t and in log-SNR.
        moves: :func:`falls_with_d` of :math:`t^*`: the transition moves to smaller t.
        sharpens: :func:`falls_with_d` of the width in log-SNR: the transition sharpens.
        narrows_in_t: :func:`falls_with_d` of the width in t, which also falls when the transition
            only moves to smaller t (a width :math:`\Delta` in log s is about :math:`t^*(1 - t^*)\Delta` in t).
    """

    family: str
    n: int
    min_d: int
    d: FloatArray
    t_star: FloatArray
    width_t: FloatArray
    width_log_snr: FloatArray
    moves: Falling
    sharpens: Falling
    narrows_in_t: Falling

    def table(self) -> pd.DataFrame:
        """d, t*, and the widths in t and in log-SNR (censored values as a dash)."""
        return pd.DataFrame({
            "family": self.family.replace("_", " "), "d": self.d.astype(int),
            "t*": [format_time(t) for t in self.t_star],
            "width in t": [format_time(w) for w in self.width_t],
            "width in log s": [format_time(w, 3) for w in self.width_log_snr],
        })

    def values(self) -> dict[str, float]:
        """Numbers for the prose, keyed ``FAMILY_...``."""
        ok = np.isfinite(self.t_star)
        first, last = (int(np.flatnonzero(ok)[0]), int(np.flatnonzero(ok)[-1])) if ok.any() else (None, None)
        w = self.width_log_snr[np.isfinite(self.width_log_snr)]
        return {f"{self.family}_{k}": v for k, v in {
            "rho_t": self.moves.rho, "rho_width": self.narrows_in_t.rho, "rho_width_log_snr": self.sharpens.rho,
            "t_small": self.t_star[first] if first is not None else math.nan,
            "t_large": self.t_star[last] if last is not None else math.nan,
            "d_small": int(self.d[first]) if first is not None else 0,
            "d_large": int(self.d[last]) if last is not None else 0,
            "width_log_snr_min": float(w.min()) if w.size else math.nan,
            "width_log_snr_max": float(w.max()) if w.size else math.nan,
            "width_log_snr_trend": "falls" if self.sharpens.holds else "does not fall",
            "falls_dimensions": self.moves.dimensions,
            "falls_by_chance": (falls_by_chance(self.moves.dimensions)
                                if MIN_DIMENSIONS <= self.moves.dimensions <= 8 else math.nan),
        }.items()}


def dimension_trend(grid: Grid, family: str, n: int, min_d: int = PAPER_MIN_D) -> Trend:
    """:class:`Trend` of ``family`` at n points over the dimensions of the grid at least ``min_d``."""
    sub = grid.of(family, n=n, min_d=min_d)
    d = sub["d"].to_numpy(np.float64)
    t = sub["t_star"].to_numpy(np.float64)
    w_t = sub["width"].to_numpy(np.float64)
    w_s = sub["width_log_snr"].to_numpy(np.float64)
    return Trend(family, n, min_d, d, t, w_t, w_s, falls_with_d(d, np.where(np.isfinite(t), t, np.nan)),
                 falls_with_d(d, w_s), falls_with_d(d, w_t))


# ---------------------------------------------------------------------------------------------------
# Verdicts: one grading for the chapter's claims
# ---------------------------------------------------------------------------------------------------

GRADING = ("reproduced when every part of the claim holds on the data the claim is about; partly reproduced "
           "when at least one part holds (also when all hold, but on stand-in data); not reproduced when no "
           "part holds")
"""The meaning of the three words for every claim of this chapter (:func:`grade`)."""


def grade(parts: dict[str, bool], on_claimed_data: bool) -> Verdict:
    """The chapter's one grading (:data:`GRADING`): ``parts`` maps each part of a claim to whether it holds."""
    if not parts:
        raise ValueError("a claim needs at least one part to grade")
    return graded(all(parts.values()) and on_claimed_data, any(parts.values()))


def _parts_text(parts: dict[str, bool]) -> str:
    return "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in parts.items())


@dataclass(frozen=True)
class HighD:
    """The cosine at high and low dimension (their Fig. 1a): what :func:`cosine_high_d_rule` reads.

    Attributes:
        data, n: the high-dimensional data set (``"cifar10"`` or its stand-in) and its size.
        fraction_at_paper_time: F at t = :data:`PAPER_TIME`.
        t_star, low, high: its :math:`t^*` and interval; t90: where F reaches 0.9.
        first_fraction: F at the first time of the grid; initial: :func:`initial_alignment`.
        variance: per-coordinate variance of its training set.
        two_d_t_star, two_d_n, two_d_fraction_half: :math:`t^*`, n and F at t = 0.5 of the 2-D data.
        two_d_first_fraction: F of the 2-D data at the first time of the grid (its initial alignment).
    """

    data: str
    n: int
    fraction_at_paper_time: float
    t_star: float
    low: float
    high: float
    t90: float
    first_fraction: float
    initial: float
    variance: float
    two_d_t_star: float
    two_d_n: int
    two_d_fraction_half: float
    two_d_first_fraction: float = math.nan

    def values(self) -> dict[str, float]:
        """Numbers for the prose (``proxy_*`` for the high-dimensional set, ``moons_*`` for 2-D)."""
        return {"proxy_fraction_paper_time": self.fraction_at_paper_time, "proxy_t_star": self.t_star,
                "proxy_t_star_low": self.low, "proxy_t_star_high": self.high, "proxy_t90": self.t90,
                "proxy_initial": self.initial, "proxy_first_fraction": self.first_fraction,
                "proxy_sigma": math.sqrt(self.variance), "moons_t_star": self.two_d_t_star,
                "moons_fraction_half": self.two_d_fraction_half, "moons_first_fraction": self.two_d_first_fraction}


def fraction_at(point: PointMeasurement, t: float, threshold: float = 0.9) -> float:
    """F at the time of the point's grid nearest to t."""
    k = int(np.argmin(np.abs(point.curves.ts - t)))
    return float(point.fraction_above(threshold)[k])


def high_d_summary(high_d: PointMeasurement, two_d: PointMeasurement, threshold: float = 0.9) -> HighD:
    """:class:`HighD` from the high-dimensional point (CIFAR-10 or its stand-in) and the 2-D one."""
    fraction = high_d.fraction_above(threshold)
    return HighD(
        data=high_d.family, n=high_d.n, fraction_at_paper_time=fraction_at(high_d, PAPER_TIME, threshold),
        t_star=high_d.critical.t_star, low=high_d.critical.low, high=high_d.critical.high,
        t90=crossing_time(high_d.curves.ts, fraction, 0.9), first_fraction=float(fraction[0]),
        initial=high_d.initial_alignment, variance=high_d.variance, two_d_t_star=two_d.critical.t_star,
        two_d_n=two_d.n, two_d_fraction_half=fraction_at(two_d, 0.5, threshold),
        two_d_first_fraction=float(two_d.fraction_above(threshold)[0]),
    )


def cosine_high_d_rule(m: HighD) -> Finding:
    """Verdict on ``cosine-high-d`` (:data:`GRADING`).

    Parts: (high d) at least 90% of the pairs have cosine above 0.9 at t = 0.2; (2-D) the 2-D data's
    :math:`t^*` is above 0.5, so the target is stochastic over most of [0, 1]. The claim is about
    CIFAR-10 with its n = 50,000 training images: any other data set is a stand-in.

    Before grading, a property of the closed form itself: as t -> 1 the posterior collapses on the
    generating point of distinct training points (``closed-form``), so at the grid's last time
    (s = 10^4, t = 0.9999) at least half of the pairs must be aligned in both data sets: a
    right-censored :math:`t^*` stops the run (:class:`ClaimBroken`). Without it a field that never
    aligns (zero, negated) fails the high-d part and passes the 2-D one, and on stand-in data the
    verdict would read *partly reproduced* exactly as for the correct field.
    """
    for label, t_star in (("high-d", m.t_star), ("2-D", m.two_d_t_star)):
        require(t_star != math.inf, "cosine-high-d",
                f"the {label} data's fraction of pairs with cosine > 0.9 stays below 1/2 up to the grid's last time "
                "(t* right-censored): the closed form collapses on the generating point as t -> 1, so the field "
                "or the cosine is wrong")
    parts = {f"F(t = {PAPER_TIME}) >= 0.9 in high d": m.fraction_at_paper_time >= 0.9,
             "2-D t* > 0.5": m.two_d_t_star > 0.5}
    on_claimed = m.data == "cifar10" and m.n == 50_000
    where = "CIFAR-10" if m.data == "cifar10" else f"{m.data.replace('_', ' ')} standing in for CIFAR-10"
    number = (f"{where}, n = {m.n}: {m.fraction_at_paper_time:.2f} of pairs have cosine > 0.9 at t = {PAPER_TIME} "
              f"(t* = {m.t_star:.3f}); 2-D, n = {m.two_d_n}: t* = {m.two_d_t_star:.3f} ({_parts_text(parts)})")
    return Finding("cosine-high-d", grade(parts, on_claimed), number,
                   "parts: F(0.2) >= 0.9 in high d, and 2-D t* > 0.5; the claimed data: CIFAR-10, n = 50,000; "
                   + GRADING)


CLAIMED_SWEEP_DATA = frozenset({"imagenette"})
"""The data of their dimension sweep (Imagenette at resolutions 8 to 256); every other family stands in."""


def dimension_sweep_rule(trends: Sequence[Trend]) -> Finding:
    r"""Verdict on ``dimension-sweep`` (:data:`GRADING`).

    Parts, each over every family given, at d >= :data:`PAPER_MIN_D`: (moves) :math:`t^*` falls
    with d; (sharpens) the width of the rise of F from one half to 0.9, *in log-SNR*, falls with d
    (:func:`falls_with_d` for both). The width in t is reported, not graded: it falls as soon as the
    transition moves to smaller t. Their data is Imagenette (:data:`CLAIMED_SWEEP_DATA`).
    """
    if not trends:
        raise ValueError("dimension_sweep_rule needs at least one family's trend")
    parts = {"t* falls with d": all(tr.moves.holds for tr in trends),
             "width in log s falls with d": all(tr.sharpens.holds for tr in trends)}
    on_claimed = all(tr.family in CLAIMED_SWEEP_DATA for tr in trends)
    number = "; ".join(
        f"{tr.family.replace('_', ' ')} (n = {tr.n}, {tr.moves.dimensions} dimensions >= {tr.min_d}): rank "
        f"correlation with d of t* {tr.moves.rho:.2f}, of the width in log s {tr.sharpens.rho:.2f}, in t "
        f"{tr.narrows_in_t.rho:.2f}" for tr in trends)
    per_family = {"t* falls with d": [tr.moves.holds for tr in trends],
                  "width in log s falls with d": [tr.sharpens.holds for tr in trends]}

    def each(holds: list[bool]) -> str:
        names = [tr.family.replace("_", " ") for tr in trends]
        listed = ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in zip(names, holds, strict=True))
        return "" if len(trends) == 1 else f" ({listed})"

    parts_text = "; ".join(f"{name} in every family: {'yes' if parts[name] else 'no'}{each(holds)}"
                           for name, holds in per_family.items())
    return Finding("dimension-sweep", grade(parts, on_claimed), f"{number} ({parts_text})",
                   f"parts: t* falls with d and the width in log s falls with d, each a Spearman correlation <= "
                   f"{FALLS_RHO} over >= {MIN_DIMENSIONS} dimensions, in every family; the claimed data: "
                   f"Imagenette; " + GRADING)


# ---------------------------------------------------------------------------------------------------
# Training-set variance: independent training sets at a few points
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetSpread:
    r""":math:`t^*` over independent training sets, against the pair bootstrap of one set.

    At each dimension d (family and n fixed), set 0 is the grid's training set (seed ``seed``);
    sets 1 to K are independent draws (seeds ``seed + k``), each with its own pairs.

    Attributes:
        family, n, n_sets: the family, the size and K.
        d: (m,) dimensions.
        t_star, pairs_low, pairs_high: (m,) :math:`t^*` of set 0 and its pair-bootstrap interval.
        set_t_stars: (m, K) :math:`t^*` of sets 1..K.
        reference: (m,) their median, the :math:`t^*` expected of a training set, measured
            independently of set 0.
        reference_low, reference_high: (m,) a two-level bootstrap interval of the reference:
            resample the K sets, then one pair-bootstrap replicate of each.
        single_low, single_high: (m,) the interval of one training set's :math:`t^*` over sets and
            pairs (percentiles of the pooled pair-bootstrap replicates of sets 1..K).
        pairs_sd, sets_sd: (m,) the spread of :math:`t^*` over pair resamples of set 0 and over sets.
    """

    family: str
    n: int
    n_sets: int
    d: FloatArray
    t_star: FloatArray
    pairs_low: FloatArray
    pairs_high: FloatArray
    set_t_stars: FloatArray = field(repr=False)
    reference: FloatArray
    reference_low: FloatArray
    reference_high: FloatArray
    single_low: FloatArray
    single_high: FloatArray
    pairs_sd: FloatArray
    sets_sd: FloatArray

    @property
    def outside_pairs(self) -> NDArray[np.bool_]:
        """Where the reference falls outside set 0's pair-bootstrap interval."""
        return (self.reference < self.pairs_low) | (self.reference > self.pairs_high)

    @property
    def outside_sets(self) -> NDArray[np.bool_]:
        """Where set 0's :math:`t^*` falls outside the interval of one set's :math:`t^*` over sets and pairs."""
        return (self.t_star < self.single_low) | (self.t_star > self.single_high)

    def table(self) -> pd.DataFrame:
        """One row per d (censored times as a dash)."""
        def interval(low: FloatArray, high: FloatArray) -> list[str]:
            return [f"{format_time(a)} to {format_time(b)}" for a, b in zip(low, high, strict=True)]

        return pd.DataFrame({
            "d": self.d.astype(int), "t* (set 0)": [format_time(t) for t in self.t_star],
            "pairs only, 95%": interval(self.pairs_low, self.pairs_high),
            f"median t* of {self.n_sets} other sets": [format_time(t) for t in self.reference],
            "its 95% (sets and pairs)": interval(self.reference_low, self.reference_high),
            "one set, 95% (sets and pairs)": interval(self.single_low, self.single_high),
            "sd over pairs": np.round(self.pairs_sd, 4), "sd over sets": np.round(self.sets_sd, 4),
            "median outside pairs-only interval": np.where(self.outside_pairs, "yes", "no"),
        })

    def values(self) -> dict[str, float]:
        """Numbers for the prose (``sets_*``)."""
        ratio = self.sets_sd / self.pairs_sd
        median = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else math.nan
        return {"sets_points": int(self.d.size), "sets_count": self.n_sets, "sets_n": self.n,
                "sets_outside_pairs": int(self.outside_pairs.sum()), "sets_outside_sets": int(self.outside_sets.sum()),
                "sets_sd_ratio_median": median}


def _finite_sd(values: FloatArray) -> float:
    v = values[np.isfinite(values)]
    return float(v.std(ddof=1)) if v.size > 1 else math.nan


def training_set_spread(
    settings: Settings, family: str, dims: Sequence[int], n: int, n_sets: int, *, n_boot: int = 2000,
    confidence: float = 0.95, progress: bool = True,
) -> SetSpread:
    """Measure :math:`t^*` on K = ``n_sets`` independent training sets at each d (:class:`SetSpread`)."""
    n_sets = check_positive_int(n_sets, "n_sets")
    if n_sets < 2:
        raise ValueError(f"n_sets must be at least 2 to measure a spread over training sets, got {n_sets}")
    if not dims:
        raise ValueError("dims must name at least one dimension for the training-set spread")
    rng = np.random.default_rng(settings.seed)
    tail = (1.0 - confidence) / 2.0
    rows = []
    for d in _progress(list(dims), f"{n_sets} training sets per d", progress):
        first = settings.measure(family, d, n)
        others = [settings.measure(family, d, n, seed=settings.seed + k) for k in range(1, n_sets + 1)]
        reps = np.stack([p.critical.replicates for p in others])  # (K, R)
        pick = rng.integers(0, n_sets, (n_boot, n_sets))
        boot = np.quantile(reps[pick, rng.integers(0, reps.shape[1], (n_boot, n_sets))], 0.5, axis=1,
                           method="inverted_cdf")
        t_sets = np.array([p.critical.t_star for p in others])
        rows.append((
            first.d, first.critical.t_star, first.critical.low, first.critical.high, t_sets,
            float(np.quantile(t_sets, 0.5, method="inverted_cdf")),
            *np.quantile(boot, [tail, 1 - tail], method="inverted_cdf"),
            *np.quantile(reps.ravel(), [tail, 1 - tail], method="inverted_cdf"),
            _finite_sd(first.critical.replicates), _finite_sd(t_sets),
        ))
    cols = list(zip(*rows, strict=True))
    arr = [np.asarray(c, dtype=np.float64) for c in cols]
    return SetSpread(family, n, n_sets, arr[0], arr[1], arr[2], arr[3], np.stack(cols[4]), *arr[5:])


# ---------------------------------------------------------------------------------------------------
# Laws for t*(d, n), and the collapse-time verdict
# ---------------------------------------------------------------------------------------------------

CIFAR_N, CIFAR_D = 50_000, 3072
"""CIFAR-10's training-set size and dimension, where the fitted laws are evaluated."""

EXERCISE_POINTS = ((1000, 64), (1000, 4096))
"""(n, d) of Exercise 3.1, where :meth:`LawFits.values` gives the fitted Gaussian capacity law's t*."""

COLLAPSE_EXPONENT = 0.5
r"""The exponent of the collapse law :math:`s^* \propto \sqrt{\log(n)/d}` (Biroli et al., moved to our path)."""

COLLAPSE_TOLERANCE = 0.05
"""An exponent is *about* 1/2 when its interval meets [0.45, 0.55] (our t* is a cosine proxy of the collapse).

Chosen after a first look at the default exponents (a first draft had 0.1, which would also accept
0.4 or 0.6); the chapter says so.
"""


@dataclass(frozen=True)
class LawFits:
    """The laws fitted per family on d >= ``min_d``, separate exponents, and the test of a log d term.

    Attributes:
        fits: (family, law) -> :class:`LawFit`, for the fits that could be made.
        exponents: family -> :class:`Exponents` (families with two n and two d).
        held_out_rmse: (family, law) -> rms error in :math:`\\log s^*` at the points with d < ``min_d``.
        collapse: the capacity law with a :math:`\\gamma \\log d` term on Gaussian data (None without).
        min_d: the smallest d of the fits; families: the families with measured points.
    """

    fits: dict[tuple[str, str], LawFit]
    exponents: dict[str, Exponents]
    held_out_rmse: dict[tuple[str, str], float]
    collapse: LawFit | None
    min_d: int
    families: tuple[str, ...]

    def fit_table(self) -> pd.DataFrame:
        """One row per fitted law, with the prediction at CIFAR-10's size where the family has several d."""
        rows = []
        for (family, law), fit in self.fits.items():
            t, low, high = fit.predict(CIFAR_N, CIFAR_D)
            several_d = np.unique(fit.d).size > 1
            rows.append({"family": family, "law": law, "points": len(fit.residuals), "left out": fit.left_out,
                         "c": round(fit.c, 4), "c 95%": f"{fit.c_interval[0]:.3g} to {fit.c_interval[1]:.3g}",
                         "alpha": round(fit.alpha, 4),
                         "alpha 95%": f"{fit.alpha_interval[0]:.3f} to {fit.alpha_interval[1]:.3f}",
                         "rms residual (log s)": round(fit.rmse, 4),
                         "t* at n 50000, d 3072": f"{t:.3f} ({low:.3f} to {high:.3f})" if several_d else "\N{EN DASH}"})
        return pd.DataFrame(rows)

    def exponent_table(self) -> pd.DataFrame:
        """One row per family with separate exponents."""
        return pd.DataFrame([{
            "family": family, "points": e.points, "beta_n": round(e.beta_n, 4),
            "beta_n 95%": f"{e.beta_n_interval[0]:.3f} to {e.beta_n_interval[1]:.3f}", "beta_d": round(e.beta_d, 4),
            "beta_d 95%": f"{e.beta_d_interval[0]:.3f} to {e.beta_d_interval[1]:.3f}",
            "beta_n - beta_d 95%": f"{e.difference_interval[0]:.3f} to {e.difference_interval[1]:.3f}",
        } for family, e in self.exponents.items()])

    def values(self) -> dict[str, float]:
        """Numbers for the prose, NaN where a family could not be fitted."""
        out: dict[str, float] = {"fit_min_d_shown": self.min_d}
        nan2 = (math.nan, math.nan)
        for family in sorted(set(self.families) | {"gaussian", "image_patches"}):
            for law in LAWS:
                fit, p = self.fits.get((family, law)), f"{family}_{law}"
                c_int, a_int = (fit.c_interval, fit.alpha_interval) if fit else (nan2, nan2)
                pred = fit.predict(CIFAR_N, CIFAR_D) if fit else (math.nan,) * 3
                out |= {f"{p}_c": fit.c if fit else math.nan, f"{p}_c_low": c_int[0], f"{p}_c_high": c_int[1],
                        f"{p}_alpha": fit.alpha if fit else math.nan, f"{p}_alpha_low": a_int[0],
                        f"{p}_alpha_high": a_int[1], f"{p}_rmse": fit.rmse if fit else math.nan,
                        f"{p}_cifar": pred[0], f"{p}_cifar_low": pred[1], f"{p}_cifar_high": pred[2],
                        f"{p}_rmse_low_d": self.held_out_rmse.get((family, law), math.nan)}
            e = self.exponents.get(family)
            out |= {f"{family}_beta_n": e.beta_n if e else math.nan, f"{family}_beta_d": e.beta_d if e else math.nan,
                    f"{family}_beta_n_low": e.beta_n_interval[0] if e else math.nan,
                    f"{family}_beta_n_high": e.beta_n_interval[1] if e else math.nan,
                    f"{family}_beta_d_low": e.beta_d_interval[0] if e else math.nan,
                    f"{family}_beta_d_high": e.beta_d_interval[1] if e else math.nan}
        for family in ("gaussian",):
            fit, e = self.fits.get((family, "power")), self.exponents.get(family)
            intervals = ([fit.alpha_interval] if fit else []) + ([e.beta_n_interval, e.beta_d_interval] if e else [])
            inside = sum(lo <= COLLAPSE_EXPONENT <= hi for lo, hi in intervals)
            out[f"{family}_exponents_containing_half"] = f"{inside} of {len(intervals)}"
            cap = self.fits.get((family, "capacity"))
            for n_ex, d_ex in EXERCISE_POINTS:
                t, low, high = cap.predict(n_ex, d_ex) if cap else (math.nan,) * 3
                key = f"{family}_capacity_t_n{n_ex}_d{d_ex}"
                out |= {key: t, f"{key}_low": low, f"{key}_high": high}
            out[f"{family}_capacity_reference"] = "no fit" if cap is None else (
                f"the interval of c {'contains' if cap.c_interval[0] <= 1 <= cap.c_interval[1] else 'excludes'} 1, "
                f"that of alpha {'contains' if cap.alpha_interval[0] <= 0.5 <= cap.alpha_interval[1] else 'excludes'}"
                " 1/2")
        c = self.collapse
        out |= {"collapse_gamma": c.gamma if c else math.nan,
                "collapse_gamma_low": c.gamma_interval[0] if c else math.nan,
                "collapse_gamma_high": c.gamma_interval[1] if c else math.nan,
                "collapse_rmse_with_log_d": c.rmse if c else math.nan,
                "collapse_gamma_excludes_zero": "excludes" if c and not c.gamma_interval[0] <= 0 <= c.gamma_interval[1]
                else "contains"}
        return out

    def covers(self, family: str, t_star: float, t_low: float, t_high: float, n: int = CIFAR_N,
               d: int = CIFAR_D) -> dict[str, str]:
        """A measured ``t_star`` (interval ``t_low`` to ``t_high``) against each law's predicted interval at (n, d).

        ``FAMILY_LAW_cifar_covers``: "inside" or "outside", whether the law's interval holds the measured
        *point*; ``FAMILY_LAW_cifar_overlap``: "overlaps" or "does not overlap", whether the two intervals share
        a value (a point outside the law's interval can still have an interval that overlaps it).
        """
        out = {}
        for law in LAWS:
            fit = self.fits.get((family, law))
            _, low, high = fit.predict(n, d) if fit else (math.nan,) * 3
            out[f"{family}_{law}_cifar_covers"] = "inside" if low <= t_star <= high else "outside"
            out[f"{family}_{law}_cifar_overlap"] = "overlaps" if t_low <= high and low <= t_high else "does not overlap"
        return out

    def collapse_finding(self) -> Finding | None:
        """:func:`collapse_time_rule` on the Gaussian fits; None when the run has no Gaussian point.

        An exponent that could not be fitted (too few uncensored points) enters as NaN: its part fails.
        """
        if "gaussian" not in self.families:
            return None
        nan3 = (math.nan, math.nan, math.nan)
        fit, e = self.fits.get(("gaussian", "power")), self.exponents.get("gaussian")
        return collapse_time_rule({"alpha": (fit.alpha, *fit.alpha_interval) if fit else nan3,
                                   "beta_n": (e.beta_n, *e.beta_n_interval) if e else nan3,
                                   "beta_d": (e.beta_d, *e.beta_d_interval) if e else nan3},
                                  family="gaussian", min_d=self.min_d)


def fit_laws(grid: Grid, families: Sequence[str], *, min_d: int, n_boot: int = 2000, seed: int = 0) -> LawFits:
    """Fit both laws and the separate exponents per family on its points with d >= ``min_d``.

    A family of one small d (two moons) keeps its points. The points below ``min_d`` are held out:
    :attr:`LawFits.held_out_rmse` is the law's error there. For Gaussian data, the capacity law is
    refitted with a :math:`\\gamma \\log d` term.
    """
    fits, exps, held = {}, {}, {}
    collapse = None
    measured = tuple(f for f in families if not grid.of(f).empty)
    for family in measured:
        of_family = grid.of(family)
        floor = min(min_d, int(of_family["d"].max()))
        sub = of_family[of_family["d"] >= floor]
        reps = np.stack(sub["replicates"].to_numpy())
        low_d = of_family[(of_family["d"] < floor) & np.isfinite(of_family["t_star"])]
        for law in LAWS:
            try:
                fit = fit_law(law, sub["n"], sub["d"], sub["t_star"], reps, n_boot=n_boot, seed=seed)
            except ValueError:
                continue
            fits[family, law] = fit
            if not low_d.empty:
                miss = log_snr(low_d["t_star"].to_numpy()) - fit.log_snr(low_d["n"], low_d["d"])
                held[family, law] = float(np.sqrt(np.mean(miss**2)))
        if sub["d"].nunique() > 1 and sub["n"].nunique() > 1:
            with contextlib.suppress(ValueError):  # too few uncensored points
                exps[family] = fit_exponents(sub["n"], sub["d"], sub["t_star"], reps, n_boot=n_boot, seed=seed)
        if family == "gaussian":
            try:
                collapse = fit_law("capacity", sub["n"], sub["d"], sub["t_star"], reps, with_log_d=True,
                                   n_boot=n_boot, seed=seed)
            except ValueError:
                collapse = None
    return LawFits(fits, exps, held, collapse, min_d, measured)


def collapse_time_rule(
    exponents: dict[str, tuple[float, float, float]], *, family: str = "gaussian", min_d: int = 0
) -> Finding:
    r"""Verdict on ``collapse-time`` (:data:`GRADING`): the exponents against :math:`s^* \propto \sqrt{\log(n)/d}`.

    ``exponents`` maps ``"alpha"`` (the power law in :math:`\log(n)/d`), ``"beta_n"`` and
    ``"beta_d"`` (:func:`fit_exponents`) to ``(estimate, low, high)``. Each is a part: it agrees
    with the law when its interval meets :math:`[1/2 - 0.05, 1/2 + 0.05]` (:data:`COLLAPSE_TOLERANCE`:
    "about 1/2", since our :math:`t^*` is a cosine proxy of their collapse) and lies inside (0, 1)
    (precise enough to tell the law from no dependence and from a linear one). The claim's
    collapse time is derived for Gaussian data: another family is a stand-in.
    """
    missing = {"alpha", "beta_n", "beta_d"} - set(exponents)
    if missing:
        raise ValueError(f"exponents lacks {', '.join(sorted(missing))}")

    def agrees(low: float, high: float) -> bool:
        near = low <= COLLAPSE_EXPONENT + COLLAPSE_TOLERANCE and high >= COLLAPSE_EXPONENT - COLLAPSE_TOLERANCE
        return bool(near and low > 0.0 and high < 1.0)

    parts = {f"{name} ~ 1/2": agrees(low, high) for name, (_, low, high) in exponents.items()}
    number = (f"{family.replace('_', ' ')} data, d >= {min_d}, cosine-based t* (not their collapse time): "
              + ", ".join(f"{name} = {est:.3f} [{low:.3f}, {high:.3f}]" for name, (est, low, high) in exponents.items())
              + f" ({_parts_text(parts)})")
    return Finding("collapse-time", grade(parts, family == "gaussian"), number,
                   "exponents fitted freely, no constant fixed (the shape of the scaling, not the level of the "
                   "time); parts: alpha, beta_n and beta_d each about 1/2 (95% interval meets "
                   f"[{0.5 - COLLAPSE_TOLERANCE:g}, {0.5 + COLLAPSE_TOLERANCE:g}] and lies inside (0, 1)); "
                   "the claimed data: Gaussian; " + GRADING)


def gaussian_collapse_time(n: int, d: int, sigma: float) -> float:
    r"""The capacity law with its predicted constants, :math:`s^* = \sqrt{n^{2/d} - 1} / \sigma`, as a time."""
    return float(snr_to_time(math.sqrt(math.expm1(2 * math.log(n) / d)) / sigma))


# ---------------------------------------------------------------------------------------------------
# The stochastic and the closed-form losses: the part of the CFM loss no field can remove
# ---------------------------------------------------------------------------------------------------

LOSS_RATIO_SMALL = 0.1
"""The losses count as nearly equivalent when the irreducible part is at most this fraction of E||x1 - x0||^2."""


@dataclass(frozen=True)
class LossRatio:
    r"""The irreducible part of the CFM loss relative to the target's energy, for one training set.

    .. math::

        R(t) = \frac{E\|x_1 - x_0 - u^*(x_t, t)\|^2}{E\|x_1 - x_0\|^2}, \qquad
        R = \frac{E_{t \sim U(0, 1)} E\|x_1 - x_0 - u^*(x_t, t)\|^2}{E\|x_1 - x_0\|^2}.

    :math:`L_{CFM}(v) = L_{FM}(v) + E\|x_1 - x_0 - u^*\|^2` for every field v (Bertrand et al.), and
    :math:`E\|x_1 - x_0\|^2` is the CFM loss of the zero field: R is the share of the stochastic loss
    that no field can remove. Since :math:`x_1 - x_0 - u^* = (x_1 - D(x_t, t))/(1 - t)`, R(t) is the
    denoiser's error scaled by :math:`(1 - t)^{-2}`: at t = 0 it is :math:`v/(1 + v)` for data of
    per-coordinate variance v, and it vanishes once the posterior has collapsed.

    Attributes:
        family, d, n: the training set.
        ts: (T,) times of the curve; per_time, per_time_se: (T,) R(t) and its standard error over pairs.
        overall, overall_se: R with t drawn uniformly with each pair, and its standard error.
        seconds: wall time.
    """

    family: str
    d: int
    n: int
    ts: FloatArray = field(repr=False)
    per_time: FloatArray = field(repr=False)
    per_time_se: FloatArray = field(repr=False)
    overall: float
    overall_se: float
    seconds: float


def loss_ratio(
    field_: object, data: Tensor, ts: Sequence[float] | FloatArray, *, batch: int = 256,
    generator: torch.Generator | None = None, family: str = "", overall_batch: int | None = None,
) -> LossRatio:
    r""":class:`LossRatio` of ``field_`` (with ``velocity(x, t)``, or a callable ``v(x, t)``) on ``data`` (n, d).

    The curve uses ``batch`` pairs at every time of ``ts``; the overall ratio ``overall_batch``
    (default 4 ``batch``) fresh pairs, each with its own :math:`t \sim U(0, 1)` (capped at
    :math:`1 - 10^{-6}`), so it is the CFM expectation itself, not a quadrature.
    """
    import time

    start = time.perf_counter()
    data = check_data(data)
    batch = check_positive_int(batch, "batch")
    grid = check_times(ts, include_start=False, include_end=False).numpy()
    velocity = check_field(field_, "field_")
    x0, x1 = draw_pairs(data, batch, generator=generator)
    target = x1 - x0
    energy = float(target.double().pow(2).sum(dim=1).mean())
    per_pair = []
    for t in grid:
        x_t = (1.0 - t) * x0 + t * x1
        per_pair.append((target - velocity(x_t, float(t))).double().pow(2).sum(dim=1).cpu().numpy())
    sq = np.stack(per_pair)  # (T, B)
    big = check_positive_int(overall_batch or 4 * batch, "overall_batch")
    y0, y1 = draw_pairs(data, big, generator=generator)
    u = torch.rand(big, generator=generator, dtype=torch.float64, device=generator_device(generator))
    t_b = u.clamp(max=1.0 - 1e-6).to(device=data.device, dtype=data.dtype)
    y_t = (1 - t_b[:, None]) * y0 + t_b[:, None] * y1
    whole = (y1 - y0 - velocity(y_t, t_b)).double().pow(2).sum(dim=1).cpu().numpy()
    big_energy = float((y1 - y0).double().pow(2).sum(dim=1).mean())
    return LossRatio(
        family=family, d=int(data.shape[1]), n=int(data.shape[0]), ts=grid, per_time=sq.mean(axis=1) / energy,
        per_time_se=sq.std(axis=1, ddof=1) / math.sqrt(batch) / energy, overall=float(whole.mean() / big_energy),
        overall_se=float(whole.std(ddof=1) / math.sqrt(big) / big_energy), seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class LossRatios:
    """:class:`LossRatio` for several families and dimensions."""

    ratios: tuple[LossRatio, ...]

    def table(self) -> pd.DataFrame:
        """One row per (family, d): the overall ratio with its standard error, and R at a few times."""
        rows = []
        for r in self.ratios:
            row = {"family": r.family.replace("_", " "), "d": r.d, "n": r.n, "R (t ~ U(0, 1))": round(r.overall, 4),
                   "standard error": round(r.overall_se, 4)}
            for t in (0.01, 0.1, 0.5):
                k = int(np.argmin(np.abs(r.ts - t)))
                row[f"R(t = {r.ts[k]:.2g})"] = round(float(r.per_time[k]), 4)
            rows.append(row)
        return pd.DataFrame(rows)

    def families(self) -> list[str]:
        """The families measured, in order."""
        return list(dict.fromkeys(r.family for r in self.ratios))

    def of(self, family: str) -> list[LossRatio]:
        """The ratios of one family, by increasing d."""
        return sorted((r for r in self.ratios if r.family == family), key=lambda r: r.d)

    def values(self) -> dict[str, float]:
        """Numbers for the prose: per family the ratio at its smallest and largest d (``loss_FAMILY_*``)."""
        out: dict[str, float] = {"loss_small": LOSS_RATIO_SMALL}
        for family in self.families():
            rs = self.of(family)
            out |= {f"loss_{family}_d_low": rs[0].d, f"loss_{family}_low": rs[0].overall,
                    f"loss_{family}_d_high": rs[-1].d, f"loss_{family}_high": rs[-1].overall,
                    f"loss_{family}_high_se": rs[-1].overall_se}
        return out

    def finding(self) -> Finding:
        """:func:`losses_equivalence_rule` on these ratios."""
        return losses_equivalence_rule({f: ([r.d for r in self.of(f)], [r.overall for r in self.of(f)])
                                        for f in self.families()})


def measure_loss_ratios(
    families: Sequence[str], *, dims: Sequence[int], resolutions: Sequence[int], n: int, times: int = 16,
    batch: int = 256, seed: int = 0, device: str | torch.device = "auto", progress: bool = True,
) -> LossRatios:
    """:func:`loss_ratio` of the closed form for each family over its dimensions (:func:`family_grid`), n points.

    The curve's times are geometric in s from 0.005 to 100 (t from 0.005 to 0.99).
    """
    from fmlib.data import make_dataset

    dev = resolve_device(device)
    ts = snr_grid(5e-3, 1e2, times)
    todo = [(f, d, m) for f in families for d, m in family_grid(f, dims=dims, resolutions=resolutions, sizes=[n])]
    ratios = []
    for family, d, m in _progress(todo, "loss ratios", progress):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        data = make_dataset(family, m, d=d, generator=gen, device=dev)
        ratios.append(loss_ratio(ClosedFormField(data), data, ts, batch=batch, generator=gen, family=family))
    return LossRatios(tuple(ratios))


def losses_equivalence_rule(by_family: dict[str, tuple[Sequence[float], Sequence[float]]]) -> Finding:
    r"""Verdict on ``losses-equivalence`` (:data:`GRADING`).

    ``by_family`` maps each family to its dimensions and overall ratios R (:class:`LossRatio`).
    Parts: (small) at each family's largest d, :math:`R \le` :data:`LOSS_RATIO_SMALL` (0.1): the
    stochastic loss exceeds the closed-form one by at most a tenth of :math:`E\|x_1 - x_0\|^2`;
    (falls) R falls with d (:func:`falls_with_d`) in every family with at least 3 dimensions. The
    claim is about high-dimensional data in general, so every family counts as claimed data.
    """
    if not by_family:
        raise ValueError("losses_equivalence_rule needs at least one family")
    small, falls, text = [], [], []
    for family, (d, r) in by_family.items():
        d, r = np.asarray(d, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if d.size == 0 or d.shape != r.shape:
            raise ValueError(f"family {family!r}: d and ratios must be non-empty and of one length")
        top = int(np.argmax(d))
        small.append(bool(r[top] <= LOSS_RATIO_SMALL))
        trend = falls_with_d(d, r)
        if trend.dimensions >= MIN_DIMENSIONS:
            falls.append(trend.holds)
        text.append(f"{family.replace('_', ' ')}: R = {r[top]:.3f} at d = {int(d[top])}"
                    + (f", rank correlation with d {trend.rho:.2f}" if trend.dimensions >= MIN_DIMENSIONS else ""))
    parts = {f"R <= {LOSS_RATIO_SMALL} at the largest d": all(small)}
    if falls:
        parts["R falls with d"] = all(falls)
    return Finding("losses-equivalence", grade(parts, True), "; ".join(text) + f" ({_parts_text(parts)})",
                   f"R = E||x1 - x0 - u*||^2 / E||x1 - x0||^2 with t ~ U(0, 1); parts: R <= {LOSS_RATIO_SMALL} at "
                   f"each family's largest d, and R falls with d (Spearman <= {FALLS_RHO}) in each family with >= "
                   f"{MIN_DIMENSIONS} dimensions; " + GRADING)


def widths_table(trends: Sequence[Trend]) -> pd.DataFrame:
    """The :meth:`Trend.table` of several families, one below the other."""
    return pd.concat([tr.table() for tr in trends], ignore_index=True) if trends else pd.DataFrame()


def cifar_paragraph(cifar: HighD | None) -> str:
    """The chapter's paragraph on CIFAR-10 itself: its numbers when it was measured, else how to add it."""
    if cifar is None:
        return ("**CIFAR-10 itself** was not part of this run. Put the official python files in "
                "`data/cifar-10-batches-py` and run `python -m fmlib run stochastic_target -p cifar10_dir "
                "data/cifar-10-batches-py` to add it to the histograms, to this paragraph and to the verdict.")
    return (f"**CIFAR-10 itself** (`cifar10_dir` given, n = {cifar.n}): t* = {cifar.t_star:.3f} "
            f"({cifar.low:.3f} to {cifar.high:.3f}), the fraction above 0.9 reaches 0.9 at t = {cifar.t90:.3f} and "
            f"is {cifar.fraction_at_paper_time:.3f} at t = {PAPER_TIME}.")
