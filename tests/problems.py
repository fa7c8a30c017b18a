"""Problems with exact answers that the tests reuse: brute-force float64 references, no tricks.

Every reference here computes the defining formula directly (explicit differences, a plain
softmax), in float64, so it shares no code and no algebraic shortcut with fmlib.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_column(t: float | Tensor, batch: int) -> Tensor:
    if isinstance(t, Tensor) and t.dim() == 1:
        return t.double().reshape(batch, 1)
    return torch.full((batch, 1), float(t), dtype=torch.float64)


def brute_force_log_weights(x: Tensor, t: float | Tensor, data: Tensor) -> Tensor:
    """log softmax_i(-||x - t y_i||^2 / (2 (1 - t)^2)) in float64 from explicit differences; (B, n). t < 1."""
    x, data = x.double().cpu(), data.double().cpu()
    tt = _as_column(t, x.shape[0]).cpu()
    diff = x[:, None, :] - tt[:, :, None] * data[None, :, :]
    logits = -(diff**2).sum(-1) / (2 * (1 - tt) ** 2)
    return torch.log_softmax(logits, dim=1)


def brute_force_posterior_mean(x: Tensor, t: float | Tensor, data: Tensor) -> Tensor:
    """sum_i lambda_i(x, t) y_i in float64; (B, d). t < 1."""
    return brute_force_log_weights(x, t, data).exp() @ data.double().cpu()


def brute_force_velocity(x: Tensor, t: float | Tensor, data: Tensor) -> Tensor:
    """(D(x, t) - x) / (1 - t) in float64; (B, d). t < 1."""
    tt = _as_column(t, x.shape[0]).cpu()
    return (brute_force_posterior_mean(x, t, data) - x.double().cpu()) / (1 - tt)


def brute_force_nearest(x: Tensor, data: Tensor) -> tuple[Tensor, Tensor]:
    """(index, distance) of the nearest row of data for each row of x, from explicit differences."""
    dist = (x.double().cpu()[:, None, :] - data.double().cpu()[None, :, :]).norm(dim=-1)
    value, index = dist.min(dim=1)
    return index, value


def relative_error(a: Tensor, b: Tensor) -> float:
    """max over rows of ||a - b|| / max(||b||, 1e-12), in float64."""
    a, b = a.double().cpu(), b.double().cpu()
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1).clamp(min=1e-12)).max())


class GaussianToGaussian:
    r"""The exact flow matching field from N(0, I) to N(mean, std^2 I), with its flow; float64.

    With :math:`\sigma_t^2 = (1 - t)^2 + t^2 s^2`, the law of x_t is :math:`N(t \mu, \sigma_t^2 I)`,
    :math:`D(x, t) = \mu + \frac{t s^2}{\sigma_t^2}(x - t \mu)`, :math:`u(x, t) = (D - x) / (1 - t)
    = \mu + \frac{t s^2 - (1 - t)}{\sigma_t^2}(x - t \mu)`, and the flow is
    :math:`x(t) = t \mu + \sigma_t x_0` (so x(1) = mean + std x0). Time-dependent, hence it checks
    the times at which a solver evaluates its stages.
    """

    def __init__(self, mean: Tensor, std: float) -> None:
        self.mean, self.std = mean.double(), float(std)

    def _sigma_sq(self, t: float) -> float:
        return (1 - t) ** 2 + t**2 * self.std**2

    def posterior_mean(self, x: Tensor, t: float) -> Tensor:
        return self.mean + t * self.std**2 / self._sigma_sq(t) * (x - t * self.mean)

    def velocity(self, x: Tensor, t: float) -> Tensor:
        return self.mean + (t * self.std**2 - (1 - t)) / self._sigma_sq(t) * (x - t * self.mean)

    def flow(self, x0: Tensor, t: float) -> Tensor:
        return t * self.mean + self._sigma_sq(t) ** 0.5 * x0


def linear_ode_solution(a: Tensor, x0: Tensor, t_start: float, t_end: float) -> Tensor:
    """Exact solution of dx/dt = A x at t_end from x0 (B, d) at t_start: x0 expm((t_end - t_start) A)^T."""
    return x0.double() @ torch.linalg.matrix_exp((t_end - t_start) * a.double()).T


def brute_force_distances(x: Tensor, data: Tensor) -> Tensor:
    """(B, n) Euclidean distances ||x_b - y_i|| in float64 from explicit differences."""
    return (x.double().cpu()[:, None, :] - data.double().cpu()[None, :, :]).norm(dim=-1)


def brute_force_pairwise(data: Tensor) -> Tensor:
    """The n (n - 1) / 2 distances ||y_i - y_j||, i < j, in float64 from explicit differences."""
    dist = brute_force_distances(data, data)
    i, j = torch.triu_indices(data.shape[0], data.shape[0], offset=1)
    return dist[i, j]


def brute_force_copy_fraction(samples: Tensor, data: Tensor, ratio: float) -> float:
    """Fraction of samples with d_1 < ratio d_2 or d_1 = 0 (d_2 = inf when n = 1), from sorted explicit distances."""
    dist = brute_force_distances(samples, data).sort(dim=1).values
    second = dist[:, 1] if data.shape[0] > 1 else torch.full_like(dist[:, 0], float("inf"))
    return float(((dist[:, 0] < ratio * second) | (dist[:, 0] == 0)).double().mean())


def brute_force_conditional_mean(transport, gamma: float, x: Tensor, t: float) -> Tensor:
    """E[x1 - x0 | x_t = x] for the pairing x1 = mean + A x0 and x_t = (1 - t) x0 + t x1 + gamma z; float64.

    ``transport`` has ``.mean`` (d,), ``.matrix`` A (d, d) and ``.dim``. Computed by conditioning the
    joint Gaussian of (x_t, x1 - x0), both written as explicit linear maps of (x0, z).
    """
    d = transport.dim
    a, mu, eye = transport.matrix.double(), transport.mean.double(), torch.eye(d, dtype=torch.float64)
    to_xt = torch.cat([(1 - t) * eye + t * a, gamma * eye], dim=1)  # x_t - t mu = to_xt @ (x0, z)
    to_u = torch.cat([a - eye, torch.zeros(d, d, dtype=torch.float64)], dim=1)  # u - mu = to_u @ (x0, z)
    c_xx, c_ux = to_xt @ to_xt.T, to_u @ to_xt.T
    return mu + (x.double() - t * mu) @ torch.linalg.solve(c_xx, c_ux.T)
