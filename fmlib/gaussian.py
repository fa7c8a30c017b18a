r"""Gaussian-to-Gaussian velocity fields in closed form: the field of an affine pairing and of the
independent coupling.

Source :math:`x_0 \sim N(0, I_d)`. An affine pairing :math:`x_1 = T(x_0) = \mu + A x_0` (the OT map
:math:`A = M^{1/2}` to :math:`N(\mu, M)`; a rotated map :math:`A = M^{1/2} R`; the 180-degree rotation
plus shift :math:`A = -I, \mu = 5 \cdot \mathbf{1}`) and the noisy interpolant
:math:`x_t = (1 - t) x_0 + t x_1 + \gamma(t) z` give, with :math:`\Theta = A - I` and
:math:`B_t = (1 - t) I + t A = I + t \Theta`,

.. math::

    x_t = t \mu + B_t x_0 + \gamma(t) z, \qquad x_1 - x_0 = \mu + \Theta x_0 .

The minimiser of :math:`E\|(x_1 - x_0) - v(x_t, t)\|^2` is the conditional mean (Gaussian conditioning)

.. math::

    v(x, t) = \mu + \Theta K_t (x - t \mu), \qquad K_t = B_t^T (B_t B_t^T + \gamma(t)^2 I)^{-1},

with the irreducible loss :math:`\operatorname{tr}\big(\Theta (I - K_t B_t) \Theta^T\big)` at time t.
At :math:`\gamma = 0` and :math:`B_t` invertible, :math:`K_t = B_t^{-1}` and

.. math::
    :label: pair-field

    v(x, t) = \mu + \Theta (I + t \Theta)^{-1} (x - t \mu),

the *pair-consistent field* (Reu et al., arXiv 2510.18118, as summarised in
``shared/notes/reu_2510.18118.md``; *reconstructed* and checked here): constant along each segment,
it has zero loss and reproduces every pair, and its flow is :math:`x(t) = t \mu + B_t x_0`. For
:math:`A = -I` it is :math:`5 \cdot \mathbf{1} - 2 (x - 5 t) / (1 - 2 t)`, singular at t = 1/2, where
every segment passes through :math:`2.5 \cdot \mathbf{1}`.

The independent coupling :math:`x_1 \sim N(\mu, M)` independent of :math:`x_0` (no noise) gives
:math:`x_t \sim N(t \mu, \Sigma_t)`, :math:`\Sigma_t = (1 - t)^2 I + t^2 M`, and the marginal field

.. math::

    u(x, t) = \mu + \big(t M - (1 - t) I\big) \Sigma_t^{-1} (x - t \mu),

whose flow is :math:`x(t) = t \mu + \Sigma_t^{1/2} x_0` (all matrices are functions of M, so they
commute); its endpoint :math:`\mu + M^{1/2} x_0` is the OT map, but its paths are not straight.

:class:`AffinePairModel` is the linear-in-x class :math:`\{v_{\mu, A}\}` of pair-consistent fields,
an ``nn.Module`` with parameters :math:`(\mu, A)`, for per-sample gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmlib._checks import as_time, check_batch, check_choice, check_points
from fmlib.couplings import NOISE_SCHEDULES, AffineMap, check_covariance, check_sigma, noise_scale, sqrtm_spd

__all__ = ["AffinePairField", "AffinePairModel", "IndependentGaussianField"]


def _check_map(transport: AffineMap) -> AffineMap:
    if not isinstance(transport, AffineMap):
        raise ValueError(f"transport must be an fmlib.couplings.AffineMap, got {type(transport).__name__}")
    return transport


class AffinePairField:
    r"""The optimal field of the pairing :math:`x_1 = \mu + A x_0` under the noisy interpolant (module docstring).

    Args:
        transport: the map T, an :class:`fmlib.couplings.AffineMap`.
        sigma: noise level >= 0; 0 gives the pair-consistent field :eq:`pair-field`.
        schedule: a key of :data:`fmlib.couplings.NOISE_SCHEDULES`.
    """

    def __init__(self, transport: AffineMap, sigma: float = 0.0, schedule: str = "constant") -> None:
        self.transport = _check_map(transport)
        self.sigma = check_sigma(sigma)
        self.schedule = check_choice(schedule, NOISE_SCHEDULES, "schedule")
        self.mean, self.matrix = transport.mean, transport.matrix
        d = self.mean.shape[0]
        self.eye = torch.eye(d, dtype=self.mean.dtype, device=self.mean.device)
        self.theta = self.matrix - self.eye

    def _b(self, t: Tensor) -> Tensor:
        """B_t = I + t Theta for t (B,); (B, d, d)."""
        return self.eye + t[:, None, None] * self.theta

    def _gain(self, t: Tensor) -> Tensor:
        r"""K_t = B_t^T (B_t B_t^T + \gamma^2 I)^{-1}, (B, d, d); at gamma = 0, B_t^{-1} (non-finite where singular)."""
        b = self._b(t)
        gamma = noise_scale(t, self.sigma, self.schedule)
        if self.sigma == 0:
            inverse, info = torch.linalg.inv_ex(b)
            return torch.where((info != 0)[:, None, None], torch.full_like(inverse, float("nan")), inverse)
        gram = b @ b.mT + gamma[:, None, None] ** 2 * self.eye
        return torch.linalg.solve(gram, b).mT  # (gram^{-1} B)^T = B^T gram^{-1}, gram symmetric

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""v(x, t) = mu + Theta K_t (x - t mu); x (B, d), t a float or (B,); (B, d).

        At sigma = 0 and a singular :math:`B_t` (t = 1/2 for :math:`A = -I`) the result is nan.
        """
        x = check_points(check_batch(x), self.mean[None])
        tt = as_time(t, x.shape[0], x)
        centred = x - tt[:, None] * self.mean
        return self.mean + ((self.theta @ self._gain(tt)) @ centred[:, :, None])[:, :, 0]

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x + (1 - t) v(x, t): the field is finite at t = 1, so the last step of an ODE solver is Euler's."""
        tt = as_time(t, x.shape[0], x)
        return x + (1 - tt)[:, None] * self.velocity(x, tt)

    def flow(self, x0: Tensor, t: float | Tensor) -> Tensor:
        r"""The flow :math:`t \mu + B_t x_0` of the pair-consistent field (sigma = 0 only); x0 (B, d); (B, d)."""
        if self.sigma != 0:
            raise ValueError("flow is the straight segment only at sigma = 0; integrate the field for sigma > 0")
        x0 = check_points(check_batch(x0, "x0"), self.mean[None], "x0")
        tt = as_time(t, x0.shape[0], x0)
        return tt[:, None] * self.mean + (self._b(tt) @ x0[:, :, None])[:, :, 0]

    def irreducible_loss(self, t: float | Tensor) -> Tensor:
        r"""The least loss at time t, :math:`\operatorname{tr}(\Theta (I - K_t B_t) \Theta^T)`; t (B,) or a float."""
        batch = t.shape[0] if isinstance(t, Tensor) and t.dim() == 1 else 1
        tt = as_time(t, batch, self.mean[None])
        residual = self.eye - self._gain(tt) @ self._b(tt)
        return torch.einsum("ij,bjk,ik->b", self.theta, residual, self.theta)


class IndependentGaussianField:
    r"""The marginal field of the independent coupling of N(0, I) and :math:`N(\mu, M)`, no noise (module docstring).

    Args:
        mean: (d,) the target mean. cov: (d, d) the target covariance, symmetric positive definite.
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.cov = check_covariance(cov)
        if not isinstance(mean, Tensor) or mean.shape != (cov.shape[0],):
            raise ValueError(f"mean must have shape ({cov.shape[0]},) to match cov, got {getattr(mean, 'shape', mean)}")
        self.mean = mean.to(cov.dtype)
        self.eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        lam, self._u = torch.linalg.eigh(cov)
        self._lam = lam

    def _spectral(self, t: Tensor, f) -> Tensor:
        """U diag(f(t, lambda)) U^T for t (B,); (B, d, d)."""
        values = f(t[:, None], self._lam[None, :])
        return (self._u[None] * values[:, None, :]) @ self._u.T[None]

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""u(x, t) = mu + (t M - (1 - t) I) Sigma_t^{-1} (x - t mu); x (B, d); (B, d)."""
        x = check_points(check_batch(x), self.mean[None])
        tt = as_time(t, x.shape[0], x)
        gain = self._spectral(tt, lambda s, lam: (s * lam - (1 - s)) / ((1 - s) ** 2 + s**2 * lam))
        return self.mean + (gain @ (x - tt[:, None] * self.mean)[:, :, None])[:, :, 0]

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x + (1 - t) u(x, t) (u is finite at t = 1)."""
        tt = as_time(t, x.shape[0], x)
        return x + (1 - tt)[:, None] * self.velocity(x, tt)

    def flow(self, x0: Tensor, t: float | Tensor) -> Tensor:
        r"""The flow :math:`t \mu + \Sigma_t^{1/2} x_0`; x0 (B, d); (B, d). At t = 1 the OT map."""
        x0 = check_points(check_batch(x0, "x0"), self.mean[None], "x0")
        tt = as_time(t, x0.shape[0], x0)
        root = self._spectral(tt, lambda s, lam: ((1 - s) ** 2 + s**2 * lam).sqrt())
        return tt[:, None] * self.mean + (root @ x0[:, :, None])[:, :, 0]

    def ot_map(self) -> AffineMap:
        r"""The endpoint map :math:`\mu + M^{1/2} x` of the flow."""
        return AffineMap(mean=self.mean, matrix=sqrtm_spd(self.cov))


class AffinePairModel(nn.Module):
    r"""The linear-in-x field class :math:`v_{\mu, A}(x, t) = \mu + \Theta (I + t \Theta)^{-1} (x - t \mu)`,
    :math:`\Theta = A - I`, with trainable ``mean`` (d,) and ``matrix`` (d, d).

    At the parameters of a pairing T it is that pairing's pair-consistent field, so it contains the OT
    field and every rotated field; ``forward(x, t)`` with x (B, d) and t (B,) returns (B, d).
    """

    def __init__(self, transport: AffineMap) -> None:
        super().__init__()
        transport = _check_map(transport)
        self.mean = nn.Parameter(transport.mean.detach().clone())
        self.matrix = nn.Parameter(transport.matrix.detach().clone())

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """v(x, t): x (B, d), t (B,); (B, d)."""
        eye = torch.eye(self.mean.shape[0], dtype=x.dtype, device=x.device)
        theta = self.matrix - eye
        b = eye + t[:, None, None] * theta
        centred = x - t[:, None] * self.mean
        return self.mean + (theta @ torch.linalg.solve(b, centred[:, :, None]))[:, :, 0]
