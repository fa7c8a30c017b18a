r"""Exact laws and bounds for the concentration of the posterior weights (Gao & Li, arXiv 2410.23594).

Setting (Gao & Li, Section 4.1; ``shared/notes/gao_li_2410.23594.md``). Training points
:math:`y_1, \dots, y_N`, the posterior weights :math:`\lambda_i(x, t)` of the optimal field
(:mod:`fmlib.closed_form`), and a point on the conditional path of one data point :math:`y_k`,

.. math::

    x = t\, y_k + (1 - t)\, z, \qquad z \sim N(0, I_d), \qquad s = \frac{t}{1 - t}.

With :math:`\Delta_j = y_k - y_j`, :math:`x - t y_k = (1 - t) z` and
:math:`x - t y_j = t \Delta_j + (1 - t) z`, so the log-ratio of two weights is

.. math::

    \log\frac{\lambda_k}{\lambda_j} = \frac{s^2 \|\Delta_j\|^2}{2} + s \langle \Delta_j, z \rangle
    \sim N\Big(\frac{s^2 \|\Delta_j\|^2}{2},\; s^2 \|\Delta_j\|^2\Big),

a one-dimensional Gaussian whatever the dimension d. Everything in this module follows from this
exact law, a union bound over the N - 1 other points and, for the events about
:math:`\lambda_k` itself, the identity :math:`\sum_i \lambda_i = 1`.

Gao & Li's Theorem 4.4 bounds the probability that the weights are *not* concentrated on one data
point by a quantity that depends on the separation of the data, on t and on N, goes to 0 fast as
t -> 1 and does not depend on d. Its exact wording (constant, threshold, assumptions) could not be
read. The bounds here (:func:`concentration_bound`, :func:`not_concentrated_bound`,
:func:`gaussian_tail_bound`, :func:`concentration_time`) are *reconstructed*: our rendering of a
bound of the kind Theorem 4.4 gives, derived from the exact law above, not the paper's statement.

Every function accepts floats or numpy arrays, broadcasts them against each other and returns a
float when all arguments are scalars, else a float64 array of the broadcast shape. Arguments are
validated here (a ``ValueError`` naming the argument, the bad value and the expected range).
:math:`\Phi` is the standard normal CDF (``scipy.special.ndtr``).

At t = 0 every weight equals 1/N, so :math:`\lambda_j \ge \varepsilon \lambda_k` holds surely for
:math:`\varepsilon \le 1`: :func:`outweigh_probability` is 1 there, and so are the bounds for
N >= 2 (except :func:`not_concentrated_bound` for :math:`\eta > 1 - 1/N`, which is then exactly 0),
while for :math:`\varepsilon = 1` the limit as t -> 0+ is 1/2 (a tie has probability 0 for any
t > 0). At t = 1, x = y_k and the weights are one-hot on y_k: every probability here is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_ndtr, logsumexp, ndtr, ndtri

from fmlib._checks import FloatArray, check_in_interval
from fmlib.path import time_to_snr

__all__ = [
    "ACTIVATION_LIPSCHITZ",
    "NormalLaw",
    "concentration_bound",
    "concentration_time",
    "gaussian_tail_bound",
    "gronwall_endpoint_bound",
    "log_weight_ratio_law",
    "mlp_lipschitz_bound",
    "not_concentrated_bound",
    "outweigh_probability",
    "simplex_outweigh_probability",
]

"""A float64 numpy array (any shape)."""


class NormalLaw(NamedTuple):
    """Mean and standard deviation of a normal law; each a float or a float64 array."""

    mean: float | FloatArray
    std: float | FloatArray


def _out(value: FloatArray) -> float | FloatArray:
    """A float for a 0-d result, else the float64 array itself."""
    return float(value) if value.ndim == 0 else value


def _first_bad(value: np.ndarray, bad: np.ndarray) -> object:
    """The first offending entry of ``value`` (``bad`` is a mask of its shape), as a Python scalar."""
    return value[bad].flat[0].item()


def _check_interval(
    value: ArrayLike, name: str, low: float, high: float, *, closed_low: bool, closed_high: bool
) -> FloatArray:
    """``value`` as float64, checked to lie in the interval from ``low`` to ``high`` (NaN is outside)."""
    return check_in_interval(value, name, low=low, high=high, low_open=not closed_low, high_open=not closed_high)


def _check_time(t: ArrayLike) -> FloatArray:
    return _check_interval(t, "t", 0.0, 1.0, closed_low=True, closed_high=True)


def _check_positive(value: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    bad = ~((array > 0) & np.isfinite(array))
    if bad.any():
        raise ValueError(f"{name} must be positive and finite (> 0), got {_first_bad(array, bad)!r}")
    return array


def _check_n_points(n_points: ArrayLike) -> FloatArray:
    """The number of data points N: integer-valued (an int or an integer array), N >= 1; as float64."""
    array = np.asarray(n_points)
    if array.dtype.kind not in "iu":
        raise ValueError(f"n_points must be an integer >= 1 (an int or an integer array), got {n_points!r}")
    bad = array < 1
    if bad.any():
        raise ValueError(f"n_points must be an integer >= 1, got {_first_bad(array, bad)!r}")
    return array.astype(np.float64)


def _threshold(u: FloatArray, log_inv_eps: FloatArray) -> FloatArray:
    r"""The standardised threshold :math:`\log(1/\varepsilon) / u - u / 2`, with :math:`u = s \|\Delta\|`.

    :math:`P[\lambda_j \ge \varepsilon \lambda_k] = \Phi(\text{this})` for t > 0. The first term is
    given its limit where u underflows to 0 (:math:`+\infty`, or 0 when :math:`\varepsilon = 1`);
    at :math:`u = \infty` (t = 1) the threshold is :math:`-\infty`.
    """
    positive = u > 0
    with np.errstate(over="ignore"):
        ratio = np.divide(log_inv_eps, u, out=np.zeros(np.broadcast(log_inv_eps, u).shape), where=positive)
    limit = np.where(log_inv_eps > 0, np.inf, np.where(log_inv_eps < 0, -np.inf, 0.0))
    return np.where(positive, ratio, limit) - u / 2.0


def _outweigh(t: FloatArray, distance: FloatArray, eps: FloatArray) -> FloatArray:
    r""":math:`P[\lambda_j \ge \varepsilon \lambda_k]` for checked arguments (:func:`outweigh_probability`)."""
    log_inv_eps = np.abs(np.log(eps))  # log(1/eps) >= 0 for eps in (0, 1]
    return np.where(t == 0, 1.0, ndtr(_threshold(time_to_snr(t) * distance, log_inv_eps)))


def log_weight_ratio_law(t: ArrayLike, distance: ArrayLike) -> NormalLaw:
    r"""The exact law of :math:`\log(\lambda_k / \lambda_j)` on the conditional path of :math:`y_k`.

    For :math:`x = t y_k + (1 - t) z`, :math:`z \sim N(0, I_d)`, :math:`s = t / (1 - t)` and
    :math:`D = \|y_k - y_j\|`:

    .. math::

        \log\frac{\lambda_k(x, t)}{\lambda_j(x, t)} \sim N\Big(\frac{s^2 D^2}{2},\; s^2 D^2\Big).

    Exact, for any dimension d and any other data points (they cancel in the ratio). Derived in
    ``shared/notes/gao_li_2410.23594.md`` (*reconstructed*: the law behind a bound of the kind of
    Gao & Li's Theorem 4.4, checked by Monte Carlo in ``tests/test_theory.py``). Degenerate (0, 0)
    at t = 0; (inf, inf) at t = 1.

    Args:
        t: time(s) in [0, 1].
        distance: :math:`D = \|y_k - y_j\| > 0`, the Euclidean distance (not its square).

    Returns:
        ``NormalLaw(mean, std)``: :math:`s^2 D^2 / 2` and :math:`s D` (the standard deviation, not
        the variance), broadcast over ``t`` and ``distance``.
    """
    t = _check_time(t)
    distance = _check_positive(distance, "distance")
    u = time_to_snr(t) * distance
    return NormalLaw(mean=_out(u * u / 2.0), std=_out(u))


def outweigh_probability(t: ArrayLike, distance: ArrayLike, *, eps: ArrayLike = 1.0) -> float | FloatArray:
    r"""The exact probability :math:`P[\lambda_j \ge \varepsilon \lambda_k]` on the conditional path of :math:`y_k`.

    For x on the conditional path of :math:`y_k` (see :func:`log_weight_ratio_law`), with
    :math:`s = t / (1 - t)` and :math:`D = \|y_k - y_j\|`,

    .. math::

        P[\lambda_j(x, t) \ge \varepsilon\, \lambda_k(x, t)]
        = \Phi\Big(\frac{\log(1/\varepsilon)}{s D} - \frac{s D}{2}\Big), \qquad 0 < t \le 1,

    and 1 at t = 0, where all weights are equal. Exact in any dimension
    (``shared/notes/gao_li_2410.23594.md``, *reconstructed* from the exact law). Decreasing in t, in
    D and in :math:`\varepsilon`. With :math:`\varepsilon = 1` it is the probability that
    :math:`y_j` gets at least the weight of :math:`y_k`; its limit as t -> 0+ is then 1/2.

    Args:
        t: time(s) in [0, 1].
        distance: :math:`D = \|y_k - y_j\| > 0`.
        eps: the factor :math:`\varepsilon \in (0, 1]`.

    Returns:
        The probability, in [0, 1], broadcast over the arguments.
    """
    t = _check_time(t)
    distance = _check_positive(distance, "distance")
    eps = _check_interval(eps, "eps", 0.0, 1.0, closed_low=False, closed_high=True)
    return _out(_outweigh(t, distance, eps))


def concentration_bound(
    t: ArrayLike, separation: ArrayLike, n_points: ArrayLike, *, eps: ArrayLike = 1.0
) -> float | FloatArray:
    r"""Union bound on the probability that some other data point outweighs :math:`y_k` up to :math:`\varepsilon`.

    *Reconstructed*: our rendering of a bound of the kind Gao & Li's Theorem 4.4 gives (its exact
    statement could not be read), derived from the exact law of :func:`outweigh_probability`.
    Assumptions: N data points whose distance from :math:`y_k` to every other point is at least
    :math:`\delta` (e.g. the minimum pairwise separation
    :math:`\delta = \min_{i \ne j} \|y_i - y_j\|`, which serves every k); x on the conditional
    path of :math:`y_k`; :math:`0 < \varepsilon \le 1`. Then

    .. math::

        P\big[\exists\, j \ne k:\ \lambda_j(x, t) \ge \varepsilon\, \lambda_k(x, t)\big]
        \le \min\Big(1,\ (N - 1)\, \Phi\Big(\frac{\log(1/\varepsilon)}{s \delta}
        - \frac{s \delta}{2}\Big)\Big), \qquad s = \frac{t}{1 - t},

    because each term of the union is the exact per-pair probability, which is decreasing in the
    distance when :math:`\varepsilon \le 1`. With :math:`\varepsilon = 1` it bounds the
    probability that :math:`\lambda_k` is not the strictly largest weight. It depends on
    :math:`\delta`, t and N, not on d; it is 1 at t = 0 (N >= 2), 0 at t = 1, and 0 for N = 1.
    Non-increasing in t, in :math:`\delta` and in :math:`\varepsilon`; non-decreasing in N.

    Args:
        t: time(s) in [0, 1].
        separation: :math:`\delta > 0`.
        n_points: N, an integer >= 1 (or an integer array).
        eps: :math:`\varepsilon \in (0, 1]`.

    Returns:
        The bound, a probability in [0, 1], broadcast over the arguments.
    """
    t = _check_time(t)
    separation = _check_positive(separation, "separation")
    n_points = _check_n_points(n_points)
    eps = _check_interval(eps, "eps", 0.0, 1.0, closed_low=False, closed_high=True)
    pair = _outweigh(t, separation, eps)
    return _out(np.minimum(1.0, (n_points - 1.0) * pair))


def not_concentrated_bound(
    t: ArrayLike, separation: ArrayLike, n_points: ArrayLike, *, eta: ArrayLike
) -> float | FloatArray:
    r"""Bound on the probability that the weight of :math:`y_k` is below :math:`1 - \eta`.

    *Reconstructed*: our rendering of a bound of the kind Gao & Li's Theorem 4.4 gives, derived
    from the exact law of :func:`outweigh_probability`; assumptions as in
    :func:`concentration_bound` (every other point at distance >= :math:`\delta` from
    :math:`y_k`, x on the conditional path of :math:`y_k`).

    If :math:`\lambda_j < \varepsilon \lambda_k` for every j != k, then
    :math:`1 = \sum_i \lambda_i < \lambda_k (1 + (N - 1)\varepsilon)`; with
    :math:`\varepsilon = \eta / ((N - 1)(1 - \eta))` this reads :math:`\lambda_k > 1 - \eta`. So
    :math:`\{\lambda_k < 1 - \eta\} \subset \bigcup_{j \ne k} \{\lambda_j \ge \varepsilon \lambda_k\}`
    for every :math:`\varepsilon > 0`, and, with :math:`u = s D_j`, :math:`\ell = \log \varepsilon`
    and the exact per-pair probability :math:`\Phi(-\ell / u - u / 2)` (t > 0),

    .. math::

        P[\lambda_k(x, t) < 1 - \eta]
        \le \min\Big(1,\ (N - 1) \sup_{u \ge s \delta} \Phi\Big(-\frac{\ell}{u} - \frac{u}{2}\Big)\Big)
        = \min\Big(1,\ (N - 1)\, \Phi\Big(-\frac{\ell}{u^*} - \frac{u^*}{2}\Big)\Big),
        \qquad u^* = \max\big(s \delta, \sqrt{2 \max(\ell, 0)}\big).

    For :math:`\eta \le 1 - 1/N` (:math:`\varepsilon \le 1`, :math:`\ell \le 0`) the supremum is at
    :math:`u = s \delta` and this is :func:`concentration_bound` at that :math:`\varepsilon`. For
    :math:`\eta > 1 - 1/N` (:math:`\varepsilon > 1`) the per-pair probability is *not* monotone in
    the distance (it peaks at :math:`u = \sqrt{2 \ell}`, value :math:`\Phi(-\sqrt{2 \ell})`), so
    plugging in :math:`\delta` would not be a bound; the supremum above is, and it is never larger
    than the bound at :math:`\eta = 1 - 1/N`. At t = 0 (all weights 1/N) the per-pair
    probability is 1 for :math:`\varepsilon \le 1` and 0 for :math:`\varepsilon > 1`. N = 1 gives 0
    (:math:`\lambda_1 = 1`). Independent of d. Non-increasing in :math:`\delta` and in :math:`\eta`,
    non-decreasing in N, and non-increasing in t on (0, 1]; for :math:`\eta > 1 - 1/N` the value
    0 at t = 0 lies below the limit as t -> 0+ (as the probability itself may: it is 0 at t = 0).

    Args:
        t: time(s) in [0, 1].
        separation: :math:`\delta > 0`.
        n_points: N, an integer >= 1 (or an integer array).
        eta: :math:`\eta \in (0, 1)`, the allowed shortfall of :math:`\lambda_k` from 1.

    Returns:
        The bound, a probability in [0, 1], broadcast over the arguments.
    """
    t = _check_time(t)
    separation = _check_positive(separation, "separation")
    n_points = _check_n_points(n_points)
    eta = _check_interval(eta, "eta", 0.0, 1.0, closed_low=False, closed_high=False)
    others = n_points - 1.0
    log_eps = np.log(eta) - np.log(1.0 - eta) - np.log(np.where(others > 0, others, 1.0))
    u_star = np.maximum(time_to_snr(t) * separation, np.sqrt(2.0 * np.maximum(log_eps, 0.0)))
    pair = np.where(t == 0, (log_eps <= 0).astype(np.float64), ndtr(_threshold(u_star, -log_eps)))
    return _out(np.minimum(1.0, others * pair))


def gaussian_tail_bound(t: ArrayLike, separation: ArrayLike, n_points: ArrayLike) -> float | FloatArray:
    r"""The cruder closed-form bound :math:`\frac{N - 1}{2} e^{-s^2 \delta^2 / 8}` (with :math:`\varepsilon = 1`).

    *Reconstructed*, like :func:`concentration_bound` (our rendering of a bound of the kind of
    Gao & Li's Theorem 4.4), of which it is an upper bound by :math:`\Phi(-a) \le e^{-a^2/2} / 2`
    for :math:`a \ge 0`:

    .. math::

        P\big[\exists\, j \ne k:\ \lambda_j \ge \lambda_k\big]
        \le \min\Big(1,\ (N - 1)\, \Phi\Big(-\frac{s\delta}{2}\Big)\Big)
        \le \min\Big(1,\ \frac{N - 1}{2}\, e^{-s^2 \delta^2 / 8}\Big), \qquad 0 < t \le 1.

    At t = 0 the event is sure (ties) and the bound returned is :math:`\min(1, N - 1)`, as for
    :func:`concentration_bound`.

    Args:
        t: time(s) in [0, 1].
        separation: :math:`\delta > 0`.
        n_points: N, an integer >= 1 (or an integer array).

    Returns:
        The bound, a probability in [0, 1], broadcast over the arguments.
    """
    t = _check_time(t)
    separation = _check_positive(separation, "separation")
    n_points = _check_n_points(n_points)
    u = time_to_snr(t) * separation
    tail = np.where(t == 0, 2.0, np.exp(-u * u / 8.0))
    return _out(np.minimum(1.0, (n_points - 1.0) / 2.0 * tail))


def concentration_time(
    separation: ArrayLike, n_points: ArrayLike, *, level: ArrayLike = 0.01, eps: ArrayLike = 1.0
) -> float | FloatArray:
    r"""The earliest time from which :func:`concentration_bound` is at most ``level``.

    *Reconstructed* (see :func:`concentration_bound`). The bound is continuous and non-increasing
    on (0, 1], so :math:`\{t \in (0, 1] : \text{bound}(t) \le \text{level}\} = [t^*, 1]` (or
    :math:`(0, 1]` when :math:`t^* = 0`). Solving
    :math:`(N - 1)\, \Phi(\log(1/\varepsilon)/(s\delta) - s\delta/2) = \text{level}` is a quadratic
    in :math:`s`: with :math:`q = \Phi^{-1}(\text{level} / (N - 1))`,

    .. math::

        s^* = \frac{\sqrt{q^2 + 2 \log(1/\varepsilon)} - q}{\delta}, \qquad
        t^* = \frac{s^*}{1 + s^*};
        \qquad \varepsilon = 1:\ s^* = \frac{2\, \Phi^{-1}(1 - \text{level}/(N - 1))}{\delta}
        \ \text{ when level} < (N - 1)/2,

    computed in a cancellation-free form. :math:`t^* = 0` for N = 1 (the bound is 0) and for
    :math:`\varepsilon = 1`, level >= (N - 1)/2 (the infimum: the bound tends to (N - 1)/2 as
    t -> 0+ but is 1 at t = 0 itself). Decreasing in :math:`\delta`, level and
    :math:`\varepsilon`; increasing in N (like :math:`\sqrt{\log N}/\delta` in s for large N).

    Args:
        separation: :math:`\delta > 0`.
        n_points: N, an integer >= 1 (or an integer array).
        level: the target probability, in (0, 1).
        eps: :math:`\varepsilon \in (0, 1]`.

    Returns:
        :math:`t^* \in [0, 1]`, broadcast over the arguments (1 only where level / (N - 1) is below
        the smallest positive float, so that :math:`s^*` overflows).
    """
    separation = _check_positive(separation, "separation")
    n_points = _check_n_points(n_points)
    level = _check_interval(level, "level", 0.0, 1.0, closed_low=False, closed_high=False)
    eps = _check_interval(eps, "eps", 0.0, 1.0, closed_low=False, closed_high=True)
    others = n_points - 1.0
    q = ndtri(level / np.where(others > 0, others, 1.0))
    log_inv_eps = np.abs(np.log(eps))  # log(1/eps) >= 0
    root = np.sqrt(q * q + 2.0 * log_inv_eps)
    # root - q, rewritten as 2 log(1/eps) / (root + q) where q > 0 to avoid cancellation
    positive = q > 0
    denominator = np.add(root, q, out=np.ones(root.shape), where=positive)
    s_delta = np.where(positive, 2.0 * log_inv_eps / denominator, root - q)
    s_star = np.where(others > 0, s_delta / separation, 0.0)
    # t = s / (1 + s); s = inf (level / (N - 1) below the smallest float) gives t = 1
    return _out(np.divide(s_star, 1.0 + s_star, out=np.ones(s_star.shape), where=np.isfinite(s_star)))


_SIMPLEX_STEP = 0.01
"""Step of the trapezoid rule in :func:`simplex_outweigh_probability` (the integrand varies on scales >= 0.5)."""

_SIMPLEX_HALF_WIDTH = 14.0
"""Half-width of the integration window around the integrand's mass (the Gaussian factor is below 1e-42 beyond it)."""


def _simplex_union_probability(c: float, others: float) -> float:
    r""":math:`\int \varphi(v)\, [1 - \Phi(v - \sqrt 2 c)^{m}]\, dv` for finite c and m = N - 1 >= 1, in log space."""
    centre = c / np.sqrt(2.0)
    if c >= 0:
        low, high = -_SIMPLEX_HALF_WIDTH, _SIMPLEX_HALF_WIDTH
    elif c >= -30.0:
        low, high = centre - _SIMPLEX_HALF_WIDTH, _SIMPLEX_HALF_WIDTH
    else:  # the mass sits near c / sqrt(2); the region near 0 weighs below exp(-c^2 / 2) of it
        low, high = centre - _SIMPLEX_HALF_WIDTH, centre + _SIMPLEX_HALF_WIDTH
    v = np.linspace(low, high, int(np.ceil((high - low) / _SIMPLEX_STEP)) + 1)
    step = v[1] - v[0]
    log_none = others * log_ndtr(v - np.sqrt(2.0) * c)  # log P[no competitor wins | V0 = v]
    with np.errstate(divide="ignore"):
        log_some = np.log(-np.expm1(log_none))
    log_trapezoid = np.full(v.shape, np.log(step))
    log_trapezoid[[0, -1]] = np.log(step / 2.0)
    log_phi = -v * v / 2.0 - 0.5 * np.log(2.0 * np.pi)
    return float(np.exp(min(0.0, logsumexp(log_phi + log_some + log_trapezoid))))


def simplex_outweigh_probability(
    t: ArrayLike, separation: ArrayLike, n_points: ArrayLike, *, eps: ArrayLike = 1.0
) -> float | FloatArray:
    r"""The exact probability that some point outweighs :math:`y_k` up to :math:`\varepsilon`, for a regular simplex.

    *Reconstructed* (our derivation, the exact counterpart of :func:`concentration_bound` in the
    case where its inequalities are tightest). Data: the N vertices of a regular simplex, every
    pairwise distance equal to :math:`\delta` (:func:`fmlib.data.make_simplex`); x on the
    conditional path of :math:`y_k` (:func:`log_weight_ratio_law`). With :math:`u = s\delta`,
    :math:`s = t / (1 - t)`, the event :math:`\lambda_j \ge \varepsilon \lambda_k` reads
    :math:`G_j \le c` with :math:`G_j = \langle y_k - y_j, z \rangle / \delta \sim N(0, 1)` and
    :math:`c = \log(1/\varepsilon)/u - u/2`. For a regular simplex
    :math:`\langle y_k - y_i, y_k - y_j \rangle = \delta^2 / 2` (i != j), so the :math:`G_j` are
    equicorrelated with correlation 1/2: :math:`G_j = (V_j - V_0)/\sqrt 2` with :math:`V_0, V_j`
    independent N(0, 1) (in law). Conditioning on :math:`V_0`,

    .. math::

        P\big[\exists\, j \ne k:\ \lambda_j \ge \varepsilon \lambda_k\big]
        = \int_{\mathbb{R}} \varphi(v) \big[1 - \Phi(v - \sqrt{2}\, c)^{N - 1}\big]\, dv ,

    computed by the trapezoid rule (step 0.01) in log space, so probabilities far below 1e-300
    stay accurate in relative terms. It depends on :math:`\delta`, t and N only, not on d
    (d >= N - 1). N = 2 gives :func:`outweigh_probability`; the union bound
    :func:`concentration_bound` is :math:`(N - 1)\, \Phi(c)` and is at least this. At t = 0 (all
    weights equal) it is 1; at t = 1 it is 0; N = 1 gives 0.

    Args:
        t: time(s) in [0, 1].
        separation: :math:`\delta > 0`.
        n_points: N, an integer >= 1 (or an integer array).
        eps: :math:`\varepsilon \in (0, 1]`.

    Returns:
        The probability, in [0, 1], broadcast over the arguments.
    """
    t = _check_time(t)
    separation = _check_positive(separation, "separation")
    n_points = _check_n_points(n_points)
    eps = _check_interval(eps, "eps", 0.0, 1.0, closed_low=False, closed_high=True)
    t, separation, n_points, eps = np.broadcast_arrays(t, separation, n_points, eps)
    c = _threshold(time_to_snr(t) * separation, np.abs(np.log(eps)))
    out = np.empty(t.shape, dtype=np.float64)
    for position in np.ndindex(t.shape):
        others, c_here = n_points[position] - 1.0, c[position]
        if others == 0 or c_here == -np.inf:
            out[position] = 0.0
        elif t[position] == 0 or c_here == np.inf:
            out[position] = 1.0
        else:
            out[position] = _simplex_union_probability(float(c_here), float(others))
    return _out(out)


ACTIVATION_LIPSCHITZ: dict[str, float] = {"relu": 1.0, "tanh": 1.0, "silu": 1.1, "gelu": 1.13, "selu": 1.76}
r"""Upper bounds of :math:`\sup_u |\sigma'(u)|`, rounded up: SiLU 1.0998 (at u = 2.40), GELU 1.1289,
SELU :math:`\lambda \alpha` = 1.7581 (checked on a fine grid in ``tests/test_osdnet.py``)."""


def mlp_lipschitz_bound(weights: Sequence[ArrayLike], activation_lipschitz: float) -> float:
    r"""A certified Lipschitz constant in x of an MLP :math:`W_L \sigma(\cdots \sigma(W_1 x + c_1(t)) \cdots) + b_L`.

    .. math:: \operatorname{Lip}_x \le \Big(\prod_{l=1}^{L} \|W_l\|_2\Big)\, \operatorname{Lip}(\sigma)^{L - 1}

    (composition; :math:`\|\cdot\|_2` the largest singular value). Biases, and inputs that depend
    on t only (a time embedding entering the first layer as :math:`c_1(t)`), do not change the
    Lipschitz constant in x: pass as ``weights[0]`` only the columns of the first layer that
    multiply x. Certified for every t, every x: an upper bound, usually far from tight.

    Args:
        weights: L >= 1 matrices, :math:`W_l` of shape (out_l, in_l); torch tensors or arrays.
        activation_lipschitz: :math:`\operatorname{Lip}(\sigma)` > 0 (see :data:`ACTIVATION_LIPSCHITZ`).

    Returns:
        the bound, a float.
    """
    if len(weights) == 0:
        raise ValueError("weights must hold at least one matrix")
    if not activation_lipschitz > 0:
        raise ValueError(f"activation_lipschitz must be > 0, got {activation_lipschitz!r}")
    bound = activation_lipschitz ** (len(weights) - 1)
    for index, weight in enumerate(weights):
        matrix = np.asarray(weight.detach().cpu().double() if hasattr(weight, "detach") else weight, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"weights[{index}] must be a matrix, got shape {matrix.shape}")
        bound *= float(np.linalg.norm(matrix, 2))
    return bound


def gronwall_endpoint_bound(ts: ArrayLike, eps: ArrayLike, lipschitz: float) -> FloatArray:
    r"""Gronwall's bound on the distance between a teacher's and a student's endpoints from the same noise.

    Continuous form: with :math:`\dot x = v_T(x, t)`, :math:`\dot y = v_S(y, t)`, :math:`x(0) = y(0)`,
    :math:`\varepsilon(s) = \|v_T(x(s), s) - v_S(x(s), s)\|` the student's error along the teacher's
    path and L a Lipschitz constant of :math:`v_S` in x, :math:`e = \|x - y\|` satisfies
    :math:`\dot e \le \varepsilon + L e`, hence (Gronwall)

    .. math:: \|x(1) - y(1)\| \le \int_0^1 e^{L (1 - s)}\, \varepsilon(s)\, ds .

    Returned here is its exact discrete counterpart for Euler's method on the grid
    :math:`t_0 = 0 < \dots < t_K = 1`, steps :math:`h_k`: from
    :math:`e_{k+1} \le (1 + h_k L) e_k + h_k \varepsilon_k` and :math:`1 + hL \le e^{hL}`,

    .. math:: \|x_K - y_K\| \le \sum_{k=0}^{K-1} h_k\, e^{L (1 - t_{k+1})}\, \varepsilon(t_k),

    a Riemann sum of the integral, valid for the Euler trajectories (and the denoiser-form last step
    :math:`x + (1 - t) v`, which is an Euler step) of any two fields, whatever K. Assumption: L bounds
    the student's Lipschitz constant in x on a set containing both paths (globally, for
    :func:`mlp_lipschitz_bound`). Source: the teacher-student decoupling of Gao & Li (arXiv
    2410.23594, Section 5) as their summary describes it; the bound and its form are our rendering.

    Args:
        ts: (K + 1,) increasing grid, ts[0] = 0 is not required (the sum runs over the grid given).
        eps: (K + 1,) or (K + 1, B): the student's error at the teacher's grid points (the last row
            is not used).
        lipschitz: L >= 0.

    Returns:
        float64 array, () or (B,): the bound per trajectory.
    """
    grid = np.asarray(ts, dtype=np.float64)
    error = np.asarray(eps, dtype=np.float64)
    if grid.ndim != 1 or grid.shape[0] < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"ts must be a strictly increasing 1-D grid of at least 2 times, got shape {grid.shape}")
    if error.shape[:1] != grid.shape or error.ndim > 2:
        raise ValueError(f"eps must have shape (K + 1,) or (K + 1, B) with K + 1 = {grid.shape[0]}, got {error.shape}")
    if np.any(error < 0) or not np.all(np.isfinite(error)):
        raise ValueError("eps must hold finite non-negative errors (norms)")
    if not lipschitz >= 0 or not np.isfinite(lipschitz):
        raise ValueError(f"lipschitz must be a finite number >= 0, got {lipschitz!r}")
    weight = np.diff(grid) * np.exp(lipschitz * (grid[-1] - grid[1:]))
    return np.asarray(np.tensordot(weight, error[:-1], axes=1))
