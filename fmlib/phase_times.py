r"""Collapse and speciation times of Biroli et al. moved from the Ornstein-Uhlenbeck process to our path.

Biroli, Bonnaire, de Bortoli & Mezard (arXiv 2402.18491, "Dynamical Regimes of Diffusion Models")
study the Ornstein-Uhlenbeck (OU) forward process and the exact empirical score, in the limit where
the dimension d and the number of data n are large. Their abstract: the backward dynamics meets a
*speciation* transition (the gross structure of the data appears; "found from a spectral analysis of
the correlation matrix") and later a *collapse* transition (trajectories are attracted to one
training point; "found from an excess entropy"). Their explicit formulas are for simple models
(Gaussian data, Gaussian mixtures) in the large-d limit; the two used here are taken in the form
issue 17 gives them (the notes of this project hold the abstract only), for data with i.i.d.
:math:`N(0, \sigma^2)` coordinates and :math:`\log(n)/d` fixed as :math:`d \to \infty`:

.. math::

    \tau_C = \tfrac12 \log\Big(1 + \frac{\sigma^2}{n^{2/d} - 1}\Big), \qquad
    \tau_S = \tfrac12 \log \Lambda,

with :math:`\Lambda` the largest eigenvalue of the covariance of the data. Outside that setting
(non-Gaussian data, small d, finite n) they are predictions to test, not results.

Change of time (our derivation; *reconstructed*). The OU process and our path are

.. math::

    x_\tau = e^{-\tau} a + \sqrt{1 - e^{-2\tau}}\, z, \qquad x_t = t\, a + (1 - t)\, z,

with a a data point and :math:`z \sim N(0, I)`. Multiplying :math:`x_\tau` by a constant changes
nothing the posterior over a can see once the constant is known, so the two are the same channel
exactly when their signal-to-noise ratios agree:

.. math::

    s = \frac{t}{1 - t} = \frac{e^{-\tau}}{\sqrt{1 - e^{-2\tau}}} = \frac{1}{\sqrt{e^{2\tau} - 1}},
    \qquad x_t \overset{d}{=} t\, e^{\tau}\, x_\tau \quad (\text{jointly with } a),

and inversely :math:`\tau = \tfrac12 \log(1 + 1/s^2)`. The posterior weights of the training points
given :math:`x_\tau` under OU equal those given :math:`t e^\tau x_\tau` on our path
(``tests/test_phase_times.py`` checks this). Substituting the two times:

.. math::

    e^{2\tau_C} - 1 = \frac{\sigma^2}{n^{2/d} - 1} \;\Rightarrow\;
    \frac{t_C}{1 - t_C} = \frac{\sqrt{n^{2/d} - 1}}{\sigma}, \qquad
    e^{2\tau_S} - 1 = \Lambda - 1 \;\Rightarrow\; \frac{t_S}{1 - t_S} = \frac{1}{\sqrt{\Lambda - 1}}.

The first is exactly chapter 3's capacity law :math:`s^* = \sqrt{n^{2/d} - 1} / \sigma` with its
constants fixed (c = 1/sigma, alpha = 1/2): a prediction with no fitted constant. For
:math:`\Lambda \le 1`, :math:`\tau_S \le 0`: no speciation before the end of the generation, and
:func:`speciation_time` returns t = 1.

Every function takes floats or numpy arrays, broadcasts them and returns a float when all arguments
are scalars, else a float64 array.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from fmlib._checks import FloatArray, check_data, check_in_interval
from fmlib.path import snr_to_time

__all__ = [
    "collapse_snr",
    "collapse_time",
    "covariance_top_eigenvalue",
    "flow_to_ou_time",
    "ou_collapse_time",
    "ou_speciation_time",
    "ou_to_flow_scale",
    "ou_to_flow_time",
    "speciation_snr",
    "speciation_time",
]

def _out(value: FloatArray) -> float | FloatArray:
    return float(value) if np.ndim(value) == 0 else value


def _n_and_d(n: ArrayLike, d: ArrayLike) -> tuple[FloatArray, FloatArray]:
    return check_in_interval(n, "n", low=2.0), check_in_interval(d, "d", low=1.0)


def ou_to_flow_time(tau: ArrayLike) -> float | FloatArray:
    r"""Our time with the signal-to-noise ratio of OU time :math:`\tau \ge 0`: :math:`s = 1/\sqrt{e^{2\tau} - 1}`.

    :math:`\tau = 0` (data) maps to t = 1 and :math:`\tau = \infty` (noise) to t = 0.
    """
    tau = check_in_interval(tau, "tau", low=0.0, high=math.inf)
    with np.errstate(divide="ignore"):
        s = 1.0 / np.sqrt(np.expm1(2.0 * tau))
    return snr_to_time(s)


def flow_to_ou_time(t: ArrayLike) -> float | FloatArray:
    r"""The inverse of :func:`ou_to_flow_time`: :math:`\tau = \tfrac12 \log(1 + ((1 - t)/t)^2)`, t in (0, 1]."""
    t = check_in_interval(t, "t", low=0.0, low_open=True, high=1.0)
    return _out(0.5 * np.log1p(((1.0 - t) / t) ** 2))


def ou_to_flow_scale(tau: ArrayLike) -> float | FloatArray:
    r"""The factor c with :math:`x_t \overset{d}{=} c\, x_\tau`: :math:`c = t e^\tau`.

    .. math:: c = \frac{1}{\sqrt{1 - e^{-2\tau}} + e^{-\tau}}


    t is :func:`ou_to_flow_time` of :math:`\tau`; c is 1 at both ends (:math:`\tau = 0` and :math:`\infty`).
    """
    tau = check_in_interval(tau, "tau", low=0.0, high=math.inf)
    decay = np.exp(-tau)
    return _out(1.0 / (np.sqrt(-np.expm1(-2.0 * tau)) + decay))


def ou_collapse_time(n: ArrayLike, d: ArrayLike, sigma: ArrayLike = 1.0) -> float | FloatArray:
    r"""Biroli et al.'s collapse time for i.i.d. :math:`N(0, \sigma^2)` data, OU clock (module docstring).

    .. math:: \tau_C = \tfrac12 \log\big(1 + \sigma^2 / (n^{2/d} - 1)\big), \qquad n \ge 2,\ d \ge 1,\ \sigma > 0.
    """
    n, d = _n_and_d(n, d)
    sigma = check_in_interval(sigma, "sigma", low=0.0, low_open=True)
    return _out(0.5 * np.log1p(sigma**2 / np.expm1(2.0 * np.log(n) / d)))


def collapse_snr(n: ArrayLike, d: ArrayLike, sigma: ArrayLike = 1.0) -> float | FloatArray:
    r"""The predicted collapse on our path as a signal-to-noise ratio: :math:`s_C = \sqrt{n^{2/d} - 1} / \sigma`."""
    n, d = _n_and_d(n, d)
    sigma = check_in_interval(sigma, "sigma", low=0.0, low_open=True)
    return _out(np.sqrt(np.expm1(2.0 * np.log(n) / d)) / sigma)


def collapse_time(n: ArrayLike, d: ArrayLike, sigma: ArrayLike = 1.0) -> float | FloatArray:
    r"""The predicted collapse time on our path: :math:`t_C = s_C / (1 + s_C)` (:func:`collapse_snr`)."""
    return snr_to_time(collapse_snr(n, d, sigma))


def ou_speciation_time(top_eigenvalue: ArrayLike) -> float | FloatArray:
    r"""Biroli et al.'s speciation time, OU clock: :math:`\tau_S = \tfrac12 \log \Lambda`, :math:`\Lambda > 0`."""
    lam = check_in_interval(top_eigenvalue, "top_eigenvalue", low=0.0, low_open=True)
    return _out(0.5 * np.log(lam))


def speciation_snr(top_eigenvalue: ArrayLike) -> float | FloatArray:
    r"""The speciation on our path as a signal-to-noise ratio: :math:`s_S = 1/\sqrt{\Lambda - 1}` (inf for Λ <= 1)."""
    lam = check_in_interval(top_eigenvalue, "top_eigenvalue", low=0.0, low_open=True)
    with np.errstate(divide="ignore"):
        return _out(np.where(lam > 1, 1.0 / np.sqrt(np.where(lam > 1, lam - 1.0, 1.0)), np.inf))


def speciation_time(top_eigenvalue: ArrayLike) -> float | FloatArray:
    r"""The speciation time on our path: :math:`t_S / (1 - t_S) = 1 / \sqrt{\Lambda - 1}`; 1 when Λ <= 1."""
    return snr_to_time(speciation_snr(top_eigenvalue))


def covariance_top_eigenvalue(data: Tensor) -> float:
    r""":math:`\Lambda`, the largest eigenvalue of the 1/n covariance of ``data`` (n, d), in float64."""
    data = check_data(data).double()
    centred = data - data.mean(dim=0)
    return float(torch.linalg.eigvalsh(centred.T @ centred / data.shape[0])[-1])
