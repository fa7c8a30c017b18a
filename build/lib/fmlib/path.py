r"""The probability path of flow matching: :math:`x_t`, its conditional target, and its signal-to-noise ratio.

.. math::

    x_t = (1 - t)\, x_0 + t\, x_1, \qquad x_0 \sim N(0, I_d), \quad x_1 \sim \text{the n training points},
    \qquad \frac{d x_t}{dt} = x_1 - x_0,

with t in [0, 1] (0 = noise, 1 = data). Seen from :math:`x_1`, :math:`x_t / t = x_1 + x_0 / s` is a
Gaussian channel whose signal-to-noise ratio is

.. math:: s = \frac{t}{1 - t}, \qquad t = \frac{s}{1 + s},

the one time change every chapter uses (grids geometric in s are fine near t = 0; interpolation is
linear in :math:`\log s`). Convention and closed form: ``shared/notes/closed_form.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fmlib._checks import FloatArray, check_data, check_float, check_positive_int, generator_device

__all__ = [
    "conditional_target",
    "draw_pairs",
    "interpolate",
    "log_snr",
    "snr_grid",
    "snr_to_time",
    "time_to_snr",
]



def interpolate(x0: Tensor, x1: Tensor, t: float | Tensor) -> Tensor:
    r""":math:`x_t = (1 - t) x_0 + t x_1`: (B, d) from (B, d) noises, (B, d) data points, t a float or (B,)."""
    t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
    t = t.reshape(-1, *([1] * (x0.dim() - 1))) if t.dim() > 0 else t
    return (1 - t) * x0 + t * x1


def conditional_target(x0: Tensor, x1: Tensor) -> Tensor:
    r"""The conditional velocity :math:`x_1 - x_0` (the CFM regression target): (B, d)."""
    return x1 - x0


def draw_pairs(data: Tensor, batch: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""B pairs :math:`(x_0, x_1)`: :math:`x_0 \sim N(0, I_d)`, :math:`x_1` uniform over the rows of ``data``.

    Drawn on the generator's device (CPU when None), noise first then indices, in float64, and
    returned with the dtype and device of ``data``: (B, d) each.
    """
    check_data(data)
    batch = check_positive_int(batch, "batch")
    source = generator_device(generator)
    x0 = torch.randn(batch, data.shape[1], generator=generator, dtype=torch.float64, device=source)
    index = torch.randint(data.shape[0], (batch,), generator=generator, device=source)
    return x0.to(device=data.device, dtype=data.dtype), data[index.to(data.device)]


def time_to_snr(t: float | FloatArray) -> float | FloatArray:
    r""":math:`s = t / (1 - t)` for t in [0, 1]; t = 1 maps to :math:`\infty` (no division warning)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = np.where(t >= 1.0, np.inf, t / np.where(t >= 1.0, 1.0, 1.0 - t))
    return float(out) if out.ndim == 0 else out


def snr_to_time(s: float | FloatArray) -> float | FloatArray:
    r""":math:`t = s / (1 + s)` for s in [0, inf]; inf maps to 1."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isinf(s), 1.0, s / (1.0 + s))
    return float(out) if out.ndim == 0 else out


def log_snr(t: float | FloatArray) -> float | FloatArray:
    r""":math:`\log(t / (1 - t))`; NaN outside (0, 1) and for censored (infinite) values."""
    t = np.asarray(t, dtype=np.float64)
    inside = np.isfinite(t) & (t > 0) & (t < 1)
    out = np.full(t.shape, np.nan)
    out[inside] = np.log(t[inside] / (1.0 - t[inside]))
    return float(out) if out.ndim == 0 else out


def snr_grid(s_min: float = 1e-3, s_max: float = 1e4, points: int = 15) -> FloatArray:
    r"""Times whose :math:`s = t / (1 - t)` are geometric from ``s_min`` to ``s_max``: (points,) float64.

    The default, 15 points from :math:`s = 10^{-3}` (t = 0.001) to :math:`10^4` (t = 0.9999), steps
    :math:`\log s` by :math:`\log \sqrt{10}`.
    """
    s_min = check_float(s_min, "s_min", low=0.0, low_open=True)
    s_max = check_float(s_max, "s_max", low=s_min, low_open=True)
    points = check_positive_int(points, "points")
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    return np.asarray(snr_to_time(np.geomspace(s_min, s_max, points)), dtype=np.float64)
