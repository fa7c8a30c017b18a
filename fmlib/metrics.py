r"""Measures of a field and of its samples: alignment with the target, separation of the data, the off-span part.

:func:`cosine_to_target` (the cosine between a field and :math:`x_1 - x_0`), :func:`pairwise_separation`
(distances between training points), and :func:`off_span_trajectories`: the part of a field's
trajectories orthogonal to the span of the data, against the exact law :math:`P x(t) = (1 - t) P x(0)`
of :math:`u^*` (*reconstructed*; used by chapters 1 and 5). Distances to the training set and the
copy criterion are in :mod:`fmlib.neighbours`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fmlib._checks import (
    as_time,
    check_batch,
    check_data,
    check_field,
    check_same_shape,
)
from fmlib.ode import Field, Velocity, integrate
from fmlib.osdnet import check_basis

__all__ = [
    "OffSpan",
    "Separation",
    "cosine_to_target",
    "off_span",
    "off_span_trajectories",
    "pairwise_separation",
]

_PAIRWISE_BLOCK_ELEMENTS = 1 << 22
"""Entries of the (rows, n) block of squared distances that :func:`pairwise_separation` forms at once."""




@dataclass(frozen=True)
class Separation:
    r"""Summary of the pairwise Euclidean distances :math:`\|y_i - y_j\|`, i < j, of a training set.

    Attributes:
        minimum: the smallest pairwise distance.
        median: the median of the n (n - 1) / 2 pairwise distances (mean of the two middle ones
            when their number is even).
    """

    minimum: float
    median: float










def cosine_to_target(field: Field | Velocity, x0: Tensor, x1: Tensor, t: float | Tensor) -> Tensor:
    r"""Cosine between the field and the conditional target :math:`x_1 - x_0` along the straight path.

    .. math::

        x_t = (1 - t) x_0 + t x_1, \qquad
        \cos_b = \frac{\langle v(x_t, t), x_1 - x_0\rangle}{\|v(x_t, t)\|\, \|x_1 - x_0\|}

    For the closed-form field :math:`u^*` this is the alignment of Bertrand et al. (arXiv
    2506.03719, Fig. 1a): close to 1 when the posterior over :math:`x_1` has collapsed onto the
    point the path came from. Defined as 0 where either vector is 0.

    Args:
        field: an object with ``velocity(x, t)`` (e.g. :class:`fmlib.closed_form.ClosedFormField`)
            or a callable ``v(x, t)``; it receives ``t`` as given (a float stays a float) and x_t (B, d).
        x0: (B, d) noise points.
        x1: (B, d) data points, same shape, dtype and device as ``x0``.
        t: a float or a (B,) tensor in [0, 1).

    Returns:
        (B,) cosines in [-1, 1], dtype and device of ``x0``.
    """
    velocity = check_field(field)
    x0 = check_batch(x0, "x0")
    x1 = check_same_shape(x1, x0, "x1", "x0")
    t_vec = as_time(t, x0.shape[0], x0)
    if bool((t_vec >= 1).any()):
        raise ValueError("t must be < 1: at t = 1 the path has reached x1 and the velocity is undefined; got t = 1")
    t_col = t_vec.unsqueeze(1)
    x_t = (1 - t_col) * x0 + t_col * x1
    v = velocity(x_t, t_vec if isinstance(t, Tensor) else float(t))
    target = x1 - x0
    norms = v.norm(dim=1) * target.norm(dim=1)
    inner = (v * target).sum(dim=1)
    return torch.where(norms > 0, inner / norms.clamp(min=torch.finfo(norms.dtype).tiny), torch.zeros_like(inner))


def _median(values: Tensor) -> float:
    """Median of a 1-D tensor: the middle value, or the mean of the two middle values."""
    m = values.shape[0]
    upper = values.kthvalue(m // 2 + 1).values
    if m % 2 == 1:
        return float(upper)
    return 0.5 * (float(values.kthvalue(m // 2).values) + float(upper))


def pairwise_separation(data: Tensor) -> Separation:
    r"""The minimum and median of the pairwise Euclidean distances of the training points.

    .. math:: \min_{i < j} \|y_i - y_j\|, \qquad \operatorname{median}_{i < j} \|y_i - y_j\|

    Streams over blocks of rows of the centred data with the matrix-product trick; the closest
    pair's distance is recomputed from the explicit difference. Holds the n (n - 1) / 2 distances
    (in the dtype of ``data``) to take their median: about 200 MB in float32 at n = 10,000.

    Args:
        data: (n, d) training points, n >= 2.

    Returns:
        :class:`Separation` with ``minimum`` and ``median`` (floats).
    """
    data = check_data(data)
    n = data.shape[0]
    if n < 2:
        raise ValueError(f"data must hold at least 2 points to have a pairwise distance, got n={n}")
    y = data - data.mean(dim=0)
    sq_norms = (y * y).sum(dim=1)
    rows = max(1, _PAIRWISE_BLOCK_ELEMENTS // n)
    values = torch.empty(n * (n - 1) // 2, dtype=data.dtype, device=data.device)
    filled, closest, closest_pair = 0, float("inf"), (0, 1)
    for start in range(0, n - 1, rows):
        stop = min(start + rows, n - 1)
        block = torch.addmm(sq_norms[start:].unsqueeze(0), y[start:stop], y[start:].T, alpha=-2.0)
        block.add_(sq_norms[start:stop].unsqueeze(1))
        above = torch.ones_like(block, dtype=torch.bool).triu_(diagonal=1)
        upper = block[above]
        values[filled : filled + upper.shape[0]] = upper
        filled += upper.shape[0]
        block.masked_fill_(~above, float("inf"))
        flat = int(block.argmin())
        if float(block.view(-1)[flat]) < closest:
            closest = float(block.view(-1)[flat])
            closest_pair = (start + flat // block.shape[1], start + flat % block.shape[1])
    distances = values.clamp_(min=0.0).sqrt_()
    minimum = float((data[closest_pair[0]] - data[closest_pair[1]]).norm())
    return Separation(minimum=minimum, median=_median(distances))



def off_span(y: Tensor, basis: Tensor) -> Tensor:
    r""":math:`P y = y - U (U^\top y)` for rows y (..., d), with ``basis`` U (d, k) orthonormal."""
    u = basis.to(dtype=y.dtype, device=y.device)
    return y - (y @ u) @ u.T


@dataclass(frozen=True)
class OffSpan:
    r"""The off-span part along B trajectories of a field on a grid of K + 1 times.

    Attributes:
        times: (K + 1,) float64.
        path_ratio: (K + 1,) median over trajectories of :math:`\|P x(t)\| / \|P x(0)\|` (:math:`1 - t` for u*).
        velocity_ratio: (K + 1,) median of :math:`\|P v(x(t), t)\| / \|P x(0)\|` (1 for u*); NaN at t = 1.
        sample_ratio: (B,) :math:`\|P x(1)\| / \|P x(0)\|` at the last time (0 for u* at t = 1).
        law_deviation: :math:`\max_{t, b} \|P x(t) - (1 - t) P x(0)\| / \|P x(0)\|`, the distance to the
            exact law of u*.
        samples: (B, d) the end points x(t_K).
    """

    times: np.ndarray
    path_ratio: np.ndarray
    velocity_ratio: np.ndarray
    sample_ratio: np.ndarray
    law_deviation: float
    samples: Tensor


def off_span_trajectories(
    field: Field | Velocity, x0: Tensor, ts: Tensor, basis: Tensor, *, method: str = "euler"
) -> OffSpan:
    r"""Integrate ``field`` from ``x0`` over ``ts`` and measure its off-span part (see :class:`OffSpan`).

    Args:
        field: a field for :func:`fmlib.ode.integrate`.
        x0: (B, d) noise.
        ts: (K + 1,) grid from 0 (to 1 needs the field's ``posterior_mean``).
        basis: (d, k) orthonormal basis of the span (checked).
        method: a solver of :data:`fmlib.ode.SOLVERS`.
    """
    velocity = check_field(field)
    x0 = check_batch(x0, "x0")
    check_basis(basis)
    if basis.shape[0] != x0.shape[1]:
        raise ValueError(f"basis has d={basis.shape[0]} rows but x0 has d={x0.shape[1]}; they must match")
    with torch.no_grad():
        result = integrate(field, x0, ts, method=method, return_trajectory=True)
    times = result.ts.numpy()
    off = off_span(result.trajectory.double(), basis)  # (K + 1, B, d)
    start = off[0].norm(dim=-1).clamp(min=1e-300)
    path = off.norm(dim=-1) / start
    law = (off - torch.from_numpy(1.0 - times).to(off)[:, None, None] * off[0]).norm(dim=-1) / start
    speed = torch.full_like(path, float("nan"))
    with torch.no_grad():
        for step, t in enumerate(times.tolist()):
            if t < 1.0:
                v = velocity(result.trajectory[step], t)
                speed[step] = off_span(v.double(), basis).norm(dim=-1) / start
    return OffSpan(
        times=times,
        path_ratio=path.median(dim=1).values.cpu().numpy(),
        velocity_ratio=speed.median(dim=1).values.cpu().numpy(),
        sample_ratio=path[-1].cpu().numpy(),
        law_deviation=float(law.max()),
        samples=result.x,
    )
