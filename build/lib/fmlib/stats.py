r"""Statistics the chapters share: binomial limits and tests, a multiple-testing correction, the one
definition of a crossing time, bootstrap least squares and percentile intervals.

Every function takes and returns plain numpy arrays (float64); none knows about fields or data sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from fmlib._checks import FloatArray, check_times
from fmlib.path import snr_to_time, time_to_snr

__all__ = [
    "binomial_limits",
    "binomial_pvalue",
    "bonferroni",
    "bootstrap_lstsq",
    "crossing_time",
    "crossing_times",
    "final_run_start",
    "percentile_interval",
    "standard_error",
]



def standard_error(p: float | np.ndarray, n: int | np.ndarray) -> float | np.ndarray:
    r"""Standard error :math:`\sqrt{p (1 - p) / n}` of a frequency over n draws (p estimated or exact)."""
    p = np.asarray(p, dtype=np.float64)
    return np.sqrt(p * (1.0 - p) / np.asarray(n, dtype=np.float64))


def _check_counts(successes: int | np.ndarray, trials: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, n = np.asarray(successes), np.asarray(trials)
    if k.dtype.kind not in "iu" or n.dtype.kind not in "iu":
        raise ValueError(f"successes and trials must be integers, got {successes!r} and {trials!r}")
    if bool(np.any(n < 1)) or bool(np.any(k < 0)) or bool(np.any(k > n)):
        raise ValueError(f"expected 0 <= successes <= trials and trials >= 1, got {successes!r} and {trials!r}")
    k, n = np.broadcast_arrays(k.astype(np.float64), n.astype(np.float64))
    return k, n


def binomial_limits(
    successes: int | np.ndarray, trials: int | np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact one-sided Clopper-Pearson confidence limits for a binomial probability.

    For :math:`k` successes in :math:`n` trials, the lower limit :math:`p_-` solves
    :math:`P[\mathrm{Bin}(n, p_-) \ge k] = \alpha` and the upper limit :math:`p_+` solves
    :math:`P[\mathrm{Bin}(n, p_+) \le k] = \alpha`:

    .. math::

        p_- = B^{-1}(\alpha;\, k, n - k + 1), \qquad p_+ = B^{-1}(1 - \alpha;\, k + 1, n - k),

    (:math:`B^{-1}` the quantile of a beta law), with :math:`p_- = 0` for k = 0 and :math:`p_+ = 1`
    for k = n. Each is a one-sided limit at level :math:`1 - \alpha`: whatever the true p,
    :math:`P[p < p_-] \le \alpha` and :math:`P[p > p_+] \le \alpha` (Clopper & Pearson, 1934).

    Args:
        successes: k, integers in [0, n] (numbers or arrays, broadcast).
        trials: n >= 1.
        alpha: the one-sided error level, in (0, 1).

    Returns:
        ``(lower, upper)``, float64 arrays of the broadcast shape.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    k, n = _check_counts(successes, trials)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(alpha, np.maximum(k, 1.0), n - k + 1.0), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1.0 - alpha, k + 1.0, np.maximum(n - k, 1.0)), 1.0)
    return lower, upper


def binomial_pvalue(
    successes: int | np.ndarray, trials: int | np.ndarray, p: float | np.ndarray, *, alternative: str = "two-sided"
) -> np.ndarray:
    r"""Exact p-value of k successes in n trials against the probability p.

    .. math::

        \text{two-sided: } \min\big(1,\ 2 \min(P[\mathrm{Bin}(n, p) \le k],\ P[\mathrm{Bin}(n, p) \ge k])\big),
        \qquad \text{greater: } P[\mathrm{Bin}(n, p) \ge k].

    "greater" tests the hypothesis "the probability is at most p" against "it is larger": it is
    below :math:`\alpha` exactly when the Clopper-Pearson lower limit at level :math:`\alpha`
    (:func:`binomial_limits`) lies above p. Under :math:`\mathrm{Bin}(n, p)` (or any probability
    below p, for "greater") each p-value is at most :math:`\alpha` with probability at most
    :math:`\alpha`. p = 0 gives 1 when k = 0 and 0 otherwise; p = 1 gives 1 when k = n.

    Returns:
        float64 array of the broadcast shape.
    """
    k, n = _check_counts(successes, trials)
    p = np.asarray(p, dtype=np.float64)
    if bool(np.any(~((p >= 0) & (p <= 1)))):
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    above = stats.binom.sf(k - 1.0, n, p)
    if alternative == "greater":
        return np.asarray(above, dtype=np.float64)
    if alternative != "two-sided":
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    below = stats.binom.cdf(k, n, p)
    return np.minimum(1.0, 2.0 * np.minimum(below, above))


def bootstrap_lstsq(
    design: FloatArray, z: FloatArray, replicates: FloatArray | None, n_boot: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Least squares of ``z`` (m,) on ``design`` (m, p), and (R, p) two-level bootstrap replicates.

    Each replicate resamples the m rows with replacement and, when ``replicates`` (m, R') of z are
    given, takes for each row a random one of them (NaN ones are dropped); replicates whose design
    is rank-deficient are skipped. Returns ``(coef, residuals, boot)``.
    """
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    residuals = z - design @ coef
    rng = np.random.default_rng(seed)
    m, p = design.shape
    boot = []
    for _ in range(n_boot):
        pick = rng.integers(0, m, m)
        zz = z[pick] if replicates is None else replicates[pick, rng.integers(0, replicates.shape[1], m)]
        keep = np.isfinite(zz)
        x = design[pick][keep]
        if keep.sum() < p or np.linalg.matrix_rank(x) < p:
            continue
        b, *_ = np.linalg.lstsq(x, zz[keep], rcond=None)
        boot.append(b)
    return coef, residuals, (np.asarray(boot) if boot else np.full((1, p), np.nan))


def percentile_interval(values: FloatArray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap replicates (NaN ones ignored): ``(low, high)``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def bonferroni(pvalues: Sequence[float] | FloatArray) -> FloatArray:
    r"""Bonferroni-adjusted p-values :math:`\min(1, m\, p_i)` for m tests (family-wise error at most :math:`\alpha`).

    Reject the tests whose adjusted p-value is at most :math:`\alpha`: the probability of any false
    rejection among the m is at most :math:`\alpha`, whatever their dependence (Bonferroni's
    inequality). NaN p-values (tests not made) stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = int(np.isfinite(p).sum())
    return np.minimum(1.0, p * max(m, 1))


def final_run_start(on_side: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per row, the index where the last run of True values reaching the end starts; T where the end is False."""
    t = on_side.shape[-1]
    last_off = np.where(~on_side, np.arange(t), -1).max(axis=-1)
    return np.where(on_side[..., -1], last_off + 1, t)


def crossing_times(
    ts: Sequence[float] | FloatArray,
    values: Sequence[float] | FloatArray,
    level: float,
    *,
    falling: bool = False,
    log_values: bool = False,
) -> FloatArray:
    r"""The crossing time of each row of ``values`` through ``level``: the one definition the book uses.

    A rising curve (``falling=False``) crosses where the last run of the grid on which it stays at or
    above ``level`` starts; a falling one where the last run at or below ``level`` starts, so a curve
    that dips back and forth is read from its end. With k that index, the time is interpolated
    between :math:`t_{k-1}` and :math:`t_k` linearly in :math:`\log s`, :math:`s = t / (1 - t)`
    (:mod:`fmlib.path`), of the values (``log_values``: of their logarithm, floored at ``level`` /
    100, exact for a power law :math:`p = C s^{-a}`); linearly in t when :math:`t_{k-1} = 0`:

    .. math::

        \log s^* = \log s_{k-1} + \frac{L - F_{k-1}}{F_k - F_{k-1}} (\log s_k - \log s_{k-1}),
        \qquad t^* = \frac{s^*}{1 + s^*}.

    Args:
        ts: (T,) strictly increasing times in [0, 1).
        values: (T,) or (R, T) curves on that grid.
        level: the level L.
        falling: read a decreasing curve (the time from which it stays at or below L).
        log_values: interpolate :math:`\log F` rather than F (positive curves such as probabilities).

    Returns:
        (R,) times (a float array of shape () for one curve); ``-inf`` when the whole grid is on the
        final side (left-censored: the crossing is before ``ts[0]``), ``+inf`` when the last value is
        not (right-censored: after ``ts[-1]``).
    """
    grid = check_times(ts, include_end=False).numpy()
    f = np.asarray(values, dtype=np.float64)
    if f.shape[-1] != grid.size or f.ndim not in (1, 2):
        raise ValueError(f"values must be (T,) or (R, T) with T = len(ts) = {grid.size}, got shape {f.shape}")
    rows = np.atleast_2d(f)
    if log_values:
        if level <= 0:
            raise ValueError(f"level must be positive with log_values, got {level!r}")
        rows, level = np.log(np.maximum(rows, level / 100.0)), math.log(level)
    if falling:
        rows, level = -rows, -level
    k = final_run_start(rows >= level)
    out = np.where(k == grid.size, math.inf, -math.inf)
    inner = np.flatnonzero((k > 0) & (k < grid.size))
    if inner.size:
        kk = k[inner]
        f0, f1 = rows[inner, kk - 1], rows[inner, kk]
        u = (level - f0) / (f1 - f0)
        t0, t1 = grid[kk - 1], grid[kk]
        at_zero = t0 == 0.0  # no log s at t = 0: linear in t there
        log_s0 = np.log(time_to_snr(np.where(at_zero, t1, t0)))
        log_s1 = np.log(time_to_snr(t1))
        by_snr = snr_to_time(np.exp(log_s0 + u * (log_s1 - log_s0)))
        out[inner] = np.where(at_zero, t0 + u * (t1 - t0), by_snr)
    return out if f.ndim == 2 else out.reshape(())


def crossing_time(
    ts: Sequence[float] | FloatArray,
    values: Sequence[float] | FloatArray,
    level: float = 0.5,
    *,
    falling: bool = False,
    log_values: bool = False,
) -> float:
    """:func:`crossing_times` of one curve, as a float (``-inf`` / ``+inf`` when censored)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be one curve (T,), got shape {values.shape}; use crossing_times for rows")
    return float(crossing_times(ts, values, level, falling=falling, log_values=log_values))
