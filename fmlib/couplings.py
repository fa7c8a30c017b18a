r"""Couplings of the source :math:`x_0 \sim N(0, I_d)` and a target, and the noisy interpolant.

Reu et al. (arXiv 2510.18118; ``shared/notes/reu_2510.18118.md``) train the rectified-flow objective

.. math::

    \mathcal{L}(v) = E\,\big\|(x_1 - x_0) - v(x_t, t)\big\|^2, \qquad
    x_t = (1 - t)\, x_0 + t\, x_1 + \gamma(t)\, z, \quad t \sim U(0, 1),\ z \sim N(0, I_d),

under a *coupling* of :math:`(x_0, x_1)`: independent; deterministic, :math:`x_1 = T(x_0)` for a
fixed map (the Gaussian OT map, a rotated OT map, the 180-degree rotation plus a shift); fixed pairs
(OT pairs shuffled, the pairs of a ReFlow data set); or minibatch OT (the pairs of an independent
batch re-assigned by an exact assignment, computed by POT's ``ot.emd``).

Every coupling has ``sample(batch, *, generator) -> CoupledBatch`` and ``dim``; :data:`COUPLINGS`
holds their constructors by name and :func:`make_coupling` builds one by name.

Noise schedules (:data:`NOISE_SCHEDULES`): the paper's experiments compare sigma = 0 and sigma = 0.05,
but its exact schedule :math:`\gamma(t) = f(t, \sigma)` could not be read (only the abstract and the
introduction of the paper were available). We use ``"constant"``, :math:`\gamma(t) = \sigma`, by
default and offer ``"bridge"``, :math:`\gamma(t) = \sigma \sqrt{t (1 - t)}` (a Brownian bridge, zero
at both ends), to show a result does not hinge on the choice. The regression target is kept at
:math:`x_1 - x_0` for both, as in the objective above: the noise perturbs the input of the field, not
its target (a stochastic interpolant in the sense of Albergo et al. would add :math:`\gamma'(t) z`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from fmlib._checks import (
    as_time,
    check_batch,
    check_choice,
    check_float,
    check_points,
    check_positive_int,
    check_same_shape,
    generator_device,
)
from fmlib.losses import BATCH_COUPLINGS, LOSSES, Batch, TargetSampler, register_coupling, register_loss

__all__ = [
    "COUPLINGS",
    "NOISE_SCHEDULES",
    "AffineMap",
    "CoupledBatch",
    "Coupling",
    "IndependentCoupling",
    "InterpolantSample",
    "MapCoupling",
    "MinibatchOTCoupling",
    "NoisyPairsField",
    "PairedCoupling",
    "PairedSampler",
    "ShuffledPairs",
    "check_covariance",
    "check_sigma",
    "gaussian_ot_map",
    "make_coupling",
    "minibatch_ot",
    "noise_scale",
    "noisy_interpolant",
    "plane_rotation",
    "register_pairs",
    "rotated_ot_map",
    "rotation_shift_map",
    "shuffled_ot_pairs",
    "sqrtm_spd",
]

Sampler = Callable[[int, "torch.Generator | None"], Tensor]
"""A target sampler ``sampler(batch, generator) -> (batch, d)``."""


def check_sigma(sigma: float, name: str = "sigma") -> float:
    """Check a noise level: a finite real number >= 0."""
    return check_float(sigma, name, low=0.0)


def check_covariance(cov: Tensor, name: str = "cov") -> Tensor:
    """Check a (d, d) symmetric positive-definite floating matrix; return it.

    Raises:
        ValueError: not a tensor, not square, not float32/float64, not symmetric (relative
            tolerance 1e-6) or not positive definite (smallest eigenvalue <= 0).
    """
    if not isinstance(cov, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (d, d), got {type(cov).__name__}")
    if cov.dim() != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(f"{name} must be a square (d, d) matrix with d >= 1, got shape {tuple(cov.shape)}")
    if cov.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {cov.dtype}")
    scale = float(cov.abs().max())
    asym = float((cov - cov.T).abs().max())
    if asym > 1e-6 * max(scale, 1e-30):
        raise ValueError(f"{name} must be symmetric, got max |M - M^T| = {asym:.3g}; pass (M + M^T) / 2")
    smallest = float(torch.linalg.eigvalsh(cov.double()).min())
    if not smallest > 0:
        raise ValueError(
            f"{name} must be positive definite, got smallest eigenvalue {smallest:.3g}; add a multiple of I"
        )
    return cov


def _check_vector(mean: Tensor, d: int | None, name: str = "mean") -> Tensor:
    if not isinstance(mean, Tensor) or mean.dim() != 1 or mean.shape[0] == 0:
        shape = tuple(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
        raise ValueError(f"{name} must be a 1-D tensor of shape (d,), got {shape}")
    if d is not None and mean.shape[0] != d:
        raise ValueError(f"{name} has d={mean.shape[0]} but the matrix is {d} x {d}; they must match")
    if mean.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {mean.dtype}")
    return mean


def _check_orthogonal(rotation: Tensor, d: int, name: str = "rotation") -> Tensor:
    if not isinstance(rotation, Tensor) or rotation.shape != (d, d):
        shape = tuple(rotation.shape) if isinstance(rotation, Tensor) else type(rotation).__name__
        raise ValueError(f"{name} must be a ({d}, {d}) orthogonal matrix, got {shape}")
    r = rotation.double()
    err = float((r.T @ r - torch.eye(d, dtype=torch.float64, device=r.device)).abs().max())
    if err > 1e-6:
        raise ValueError(f"{name} must be orthogonal (R^T R = I), got max |R^T R - I| = {err:.3g}")
    return rotation


def sqrtm_spd(cov: Tensor) -> Tensor:
    r"""The symmetric square root :math:`M^{1/2} = U \operatorname{diag}(\sqrt{\lambda}) U^T` of an SPD matrix.

    Args:
        cov: (d, d) symmetric positive-definite matrix (checked by :func:`check_covariance`).

    Returns:
        (d, d) tensor with the dtype and device of ``cov``.
    """
    cov = check_covariance(cov)
    lam, u = torch.linalg.eigh(cov)
    return (u * lam.sqrt()) @ u.T


@dataclass(frozen=True)
class AffineMap:
    r"""The map :math:`T(x) = \mu + A x`; ``mean`` (d,) is :math:`\mu`, ``matrix`` (d, d) is :math:`A`."""

    mean: Tensor
    matrix: Tensor

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.mean.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        """T(x) for x (B, d); result (B, d)."""
        return self.mean + x @ self.matrix.T


def gaussian_ot_map(mean: Tensor, cov: Tensor) -> AffineMap:
    r"""The optimal transport map from :math:`N(0, I)` to :math:`N(\mu, M)`: :math:`T(x) = \mu + M^{1/2} x`.

    Args:
        mean: (d,) the target mean :math:`\mu`.
        cov: (d, d) the target covariance M, symmetric positive definite.
    """
    cov = check_covariance(cov)
    mean = _check_vector(mean, cov.shape[0])
    return AffineMap(mean=mean, matrix=sqrtm_spd(cov).to(mean.dtype))


def rotated_ot_map(mean: Tensor, cov: Tensor, rotation: Tensor) -> AffineMap:
    r"""A rotated pairing of :math:`N(0, I)` and :math:`N(\mu, M)`: :math:`T(x) = \mu + M^{1/2} R x`.

    Since :math:`R x \sim N(0, I)`, T pushes the source onto the same target as the OT map, but pairs
    the points differently (Reu et al., ``shared/notes/reu_2510.18118.md``).

    Args:
        mean: (d,) the target mean.
        cov: (d, d) the target covariance, symmetric positive definite.
        rotation: (d, d) orthogonal R (e.g. :func:`plane_rotation`).
    """
    ot_map = gaussian_ot_map(mean, cov)
    rotation = _check_orthogonal(rotation, ot_map.dim)
    return AffineMap(mean=ot_map.mean, matrix=ot_map.matrix @ rotation.to(ot_map.matrix))


def rotation_shift_map(d: int, shift: float = 5.0, *, dtype: torch.dtype = torch.float64, device=None) -> AffineMap:
    r"""The 180-degree rotation plus a shift, :math:`T(x) = -x + s \mathbf{1}`.

    Every segment from x to T(x) passes through :math:`(s/2) \mathbf{1}` at t = 1/2 (Reu et al.'s
    example with s = 5).
    """
    d = check_positive_int(d, "d")
    shift = check_float(shift, "shift")
    eye = torch.eye(d, dtype=dtype, device=device)
    return AffineMap(mean=torch.full((d,), shift, dtype=dtype, device=device), matrix=-eye)


def plane_rotation(d: int, angle: float, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    r"""The rotation by ``angle`` (radians) in each plane of coordinates (0, 1), (2, 3), ...; (d, d).

    For odd d the last coordinate is left fixed. The eigenvalues are :math:`e^{\pm i\,\text{angle}}`
    (and 1), so for :math:`|\text{angle}| < \pi` and :math:`M = I` the pair-consistent field of
    :func:`rotated_ot_map` is regular on [0, 1].
    """
    d = check_positive_int(d, "d")
    angle = check_float(angle, "angle")
    r = torch.eye(d, dtype=dtype, device=device)
    c, s = math.cos(angle), math.sin(angle)
    for k in range(0, d - 1, 2):
        r[k, k], r[k, k + 1], r[k + 1, k], r[k + 1, k + 1] = c, -s, s, c
    return r


@dataclass(frozen=True)
class CoupledBatch:
    """A batch of pairs: ``x0`` (B, d) source points and ``x1`` (B, d) their partners."""

    x0: Tensor
    x1: Tensor


class Coupling(Protocol):
    """A coupling of the source N(0, I) and a target: draws pairs."""

    @property
    def dim(self) -> int:
        """The dimension d."""
        ...

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> CoupledBatch:
        """Draw ``batch`` pairs, each (batch, d)."""
        ...


def _normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normals drawn in float64 on the generator's device, returned like ``like`` (the house rule)."""
    z = torch.randn(shape, generator=generator, dtype=torch.float64, device=generator_device(generator, like.device))
    return z.to(dtype=like.dtype, device=like.device)


def _index(n: int, batch: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``batch`` uniform indices in range(n), drawn on the generator's device, returned on ``like``'s."""
    index = torch.randint(n, (batch,), generator=generator, device=generator_device(generator, like.device))
    return index.to(like.device)


def _source(batch: int, d: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``batch`` draws of N(0, I_d), with the dtype and device of ``like``."""
    return _normal((batch, d), like, generator)


def _draw_target(target: Tensor | Sampler, batch: int, generator: torch.Generator | None) -> Tensor:
    if isinstance(target, Tensor):
        return target[_index(target.shape[0], batch, target, generator)]
    return target(batch, generator)


class IndependentCoupling:
    r"""The independent coupling: :math:`x_0 \sim N(0, I)` and :math:`x_1` from the target, independently.

    Args:
        target: (n, d) training points (drawn uniformly with replacement), or a sampler
            ``sampler(batch, generator) -> (batch, d)`` together with ``dim``.
        dim: the dimension d when ``target`` is a sampler.
    """

    def __init__(self, target: Tensor | Sampler, dim: int | None = None) -> None:
        if isinstance(target, Tensor):
            self.target, self._dim = check_batch(target, "target"), target.shape[1]
        elif callable(target):
            self.target, self._dim = target, check_positive_int(dim, "dim")
        else:
            raise ValueError(f"target must be an (n, d) tensor or a sampler(batch, generator), got {type(target)}")

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self._dim

    def _pairs(self, batch: int, generator: torch.Generator | None) -> CoupledBatch:
        x1 = _draw_target(self.target, batch, generator)
        return CoupledBatch(x0=_source(batch, self._dim, x1, generator), x1=x1)

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> CoupledBatch:
        """Draw ``batch`` independent pairs."""
        return self._pairs(check_positive_int(batch, "batch"), generator)


class MapCoupling:
    r"""A deterministic coupling :math:`x_1 = T(x_0)`, :math:`x_0 \sim N(0, I)`."""

    def __init__(self, transport: AffineMap) -> None:
        self.transport = transport

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.transport.dim

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> CoupledBatch:
        """Draw ``batch`` sources and map them."""
        x0 = _source(check_positive_int(batch, "batch"), self.dim, self.transport.mean, generator)
        return CoupledBatch(x0=x0, x1=self.transport(x0))


class PairedCoupling:
    """A fixed set of n pairs (a ReFlow data set, shuffled OT pairs), drawn uniformly with replacement.

    Args:
        x0: (n, d) source points; x1: (n, d) their partners.
    """

    def __init__(self, x0: Tensor, x1: Tensor) -> None:
        self.x0 = check_batch(x0, "x0")
        self.x1 = check_same_shape(check_batch(x1, "x1"), self.x0, "x1", "x0")

    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.x0.shape[1]

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> CoupledBatch:
        """Draw ``batch`` of the stored pairs."""
        batch = check_positive_int(batch, "batch")
        index = _index(self.x0.shape[0], batch, self.x0, generator)
        return CoupledBatch(x0=self.x0[index], x1=self.x1[index])


def minibatch_ot(x0: Tensor, x1: Tensor) -> Tensor:
    r"""Re-order ``x1`` by the exact assignment minimising :math:`\sum_i \|x_0^i - x_1^{\pi(i)}\|^2` (POT ``ot.emd``).

    With uniform weights on two batches of equal size the optimal plan is a permutation
    (Birkhoff); the assignment is computed in float64 on the CPU.

    Args:
        x0: (B, d) source points; x1: (B, d) target points.

    Returns:
        (B, d) the rows of ``x1`` re-ordered so that row i is the partner of ``x0[i]``.
    """
    import ot  # POT takes over a second to import; only this function needs it, so fmlib's start-up does not

    x0 = check_batch(x0, "x0")
    x1 = check_same_shape(check_batch(x1, "x1"), x0, "x1", "x0")
    a = x0.detach().double().cpu().numpy()
    b = x1.detach().double().cpu().numpy()
    cost = ot.dist(a, b)  # squared Euclidean
    weights = np.full(a.shape[0], 1.0 / a.shape[0])
    plan = ot.emd(weights, weights, cost)
    partner = torch.from_numpy(plan.argmax(axis=1)).to(x1.device)
    return x1[partner]


class MinibatchOTCoupling(IndependentCoupling):
    """Minibatch OT: an independent batch whose pairs are re-assigned by :func:`minibatch_ot`."""

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> CoupledBatch:
        """Draw an independent batch and re-pair it by exact OT."""
        pairs = self._pairs(check_positive_int(batch, "batch"), generator)
        return CoupledBatch(x0=pairs.x0, x1=minibatch_ot(pairs.x0, pairs.x1))


@dataclass(frozen=True)
class ShuffledPairs:
    """OT pairs with their partners shuffled.

    Attributes:
        x0: (n, d) sources. x1: (n, d) the shuffled partners, ``x1[i] = T(x0[permutation[i]])``.
        ot_partner: (n, d) the OT partners ``T(x0)``. permutation: (n,) the shuffle.
        coupling: the :class:`PairedCoupling` of ``(x0, x1)`` to train on.
    """

    x0: Tensor
    x1: Tensor
    ot_partner: Tensor
    permutation: Tensor
    coupling: PairedCoupling


def shuffled_ot_pairs(
    x0: Tensor, transport: AffineMap | Tensor, *, generator: torch.Generator | None = None
) -> ShuffledPairs:
    r"""Pairs :math:`(x_0^i, y^{\pi(i)})` with :math:`y = T(x_0)` the OT partners and :math:`\pi` a random permutation.

    Args:
        x0: (n, d) source points.
        transport: the OT map T, or the (n, d) partners T(x0) themselves (e.g. minibatch-OT partners
            of digits).
        generator: for the permutation (drawn on the generator's device; ``permutation`` is returned on the CPU).
    """
    x0 = check_batch(x0, "x0")
    partner = transport(x0) if isinstance(transport, AffineMap) else transport
    partner = check_same_shape(check_batch(partner, "transport"), x0, "transport", "x0")
    perm = torch.randperm(x0.shape[0], generator=generator, device=generator_device(generator)).cpu()
    x1 = partner[perm.to(partner.device)]
    return ShuffledPairs(x0=x0, x1=x1, ot_partner=partner, permutation=perm, coupling=PairedCoupling(x0, x1))


COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "independent": IndependentCoupling,
    "minibatch-ot": MinibatchOTCoupling,
    "ot": lambda mean, cov: MapCoupling(gaussian_ot_map(mean, cov)),
    "rotated-ot": lambda mean, cov, rotation: MapCoupling(rotated_ot_map(mean, cov, rotation)),
    "rotation-180": lambda d, shift=5.0: MapCoupling(rotation_shift_map(d, shift)),
    "shuffled-ot": lambda x0, transport, generator=None: shuffled_ot_pairs(x0, transport, generator=generator).coupling,
    "pairs": PairedCoupling,
}
"""Coupling constructors by name, with their arguments:
``independent(target, dim=None)``, ``minibatch-ot(target, dim=None)``, ``ot(mean, cov)``,
``rotated-ot(mean, cov, rotation)``, ``rotation-180(d, shift=5.0)``,
``shuffled-ot(x0, transport, generator=None)``, ``pairs(x0, x1)``."""


def make_coupling(name: str, **kwargs) -> Coupling:
    """Build the coupling ``name`` of :data:`COUPLINGS` from its keyword arguments.

    Raises:
        ValueError: unknown name (the message lists the names), or arguments the coupling does not take.
    """
    factory = COUPLINGS[check_choice(name, COUPLINGS, "coupling")]
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(
            f"coupling {name!r}: bad arguments {sorted(kwargs)} ({err}); see fmlib.couplings.COUPLINGS"
        ) from err


NOISE_SCHEDULES: dict[str, Callable[[Tensor], Tensor]] = {
    "constant": lambda t: torch.ones_like(t),
    "bridge": lambda t: (t * (1 - t)).sqrt(),
}
r"""Noise profiles by name: :math:`\gamma(t) = \sigma\, g(t)` with ``constant`` :math:`g = 1` and
``bridge`` :math:`g = \sqrt{t (1 - t)}`. The paper's own schedule could not be read (module docstring)."""


def noise_scale(t: Tensor, sigma: float, schedule: str = "constant") -> Tensor:
    r"""The noise level :math:`\gamma(t) = \sigma\, g(t)` of ``schedule``; t (B,), result (B,)."""
    sigma = check_sigma(sigma)
    profile = NOISE_SCHEDULES[check_choice(schedule, NOISE_SCHEDULES, "schedule")]
    return sigma * profile(t)


@dataclass(frozen=True)
class InterpolantSample:
    r"""A draw of the noisy interpolant.

    Attributes:
        x_t: (B, d) :math:`(1 - t) x_0 + t x_1 + \gamma(t) z`.
        t: (B,) the times.
        target: (B, d) the regression target :math:`x_1 - x_0`.
        noise: (B, d) the standard normal z (drawn also when sigma = 0, so that runs at different
            sigma share their random numbers).
    """

    x_t: Tensor
    t: Tensor
    target: Tensor
    noise: Tensor


def noisy_interpolant(
    x0: Tensor,
    x1: Tensor,
    t: float | Tensor,
    *,
    sigma: float = 0.0,
    schedule: str = "constant",
    generator: torch.Generator | None = None,
) -> InterpolantSample:
    r"""The noisy interpolant :math:`x_t = (1 - t) x_0 + t x_1 + \sigma g(t) z` and its target :math:`x_1 - x_0`.

    Args:
        x0: (B, d) sources; x1: (B, d) their partners (from a coupling).
        t: a float or (B,) times in [0, 1].
        sigma: noise level >= 0 (Reu et al. compare 0 and 0.05).
        schedule: a key of :data:`NOISE_SCHEDULES`.
        generator: for z.

    Returns:
        :class:`InterpolantSample`.
    """
    sigma = check_sigma(sigma)
    schedule = check_choice(schedule, NOISE_SCHEDULES, "schedule")
    x0 = check_batch(x0, "x0")
    x1 = check_same_shape(check_batch(x1, "x1"), x0, "x1", "x0")
    tt = as_time(t, x0.shape[0], x0)
    z = _normal(tuple(x0.shape), x0, generator)
    gamma = noise_scale(tt, sigma, schedule)[:, None]
    x_t = (1 - tt[:, None]) * x0 + tt[:, None] * x1 + gamma * z
    return InterpolantSample(x_t=x_t, t=tt, target=x1 - x0, noise=z)


class NoisyPairsField:
    r"""The optimal field of n fixed pairs :math:`(x_0^i, x_1^i)` under the noisy interpolant, sigma > 0.

    With :math:`x_t = (1 - t) x_0^i + t x_1^i + \gamma(t) z` and i uniform, Bayes' rule gives

    .. math::

        v(x, t) = \sum_i w_i(x, t)\, (x_1^i - x_0^i), \qquad
        w(x, t) = \operatorname{softmax}_i\Big(-\frac{\|x - (1 - t) x_0^i - t x_1^i\|^2}{2 \gamma(t)^2}\Big),

    the minimiser of :math:`E\|(x_1 - x_0) - v(x_t, t)\|^2` over all fields (our derivation; the
    analogue for pairs of :class:`fmlib.closed_form.ClosedFormField`). Where :math:`\gamma(t) = 0`
    (the ``bridge`` schedule at t = 0 and 1) the weights are those of the nearest segment point.
    Squared distances by the expansion :math:`\|x\|^2 - 2 \langle x, c_i \rangle + \|c_i\|^2`, memory O(B n).

    Args:
        x0: (n, d) sources; x1: (n, d) their partners.
        sigma: noise level > 0 (at sigma = 0 the field is defined on the segments only).
        schedule: a key of :data:`NOISE_SCHEDULES`.
    """

    def __init__(self, x0: Tensor, x1: Tensor, sigma: float, schedule: str = "constant") -> None:
        self.x0 = check_batch(x0, "x0")
        self.x1 = check_same_shape(check_batch(x1, "x1"), self.x0, "x1", "x0")
        self.sigma = check_sigma(sigma)
        if self.sigma == 0:
            raise ValueError("sigma must be > 0: at sigma = 0 the optimal field of fixed pairs is defined on the "
                             "segments only (use fmlib.gaussian.AffinePairField for a map)")
        self.schedule = check_choice(schedule, NOISE_SCHEDULES, "schedule")

    def weights(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The posterior weights w (B, n) of the pairs at x (B, d), t a float or (B,)."""
        x = check_points(check_batch(x), self.x0)
        tt = as_time(t, x.shape[0], x)
        a, b, col = self.x0, self.x1 - self.x0, tt[:, None]  # centre c_i = a_i + t b_i
        inner = x @ a.T + col * (x @ b.T)  # <x, c_i>, (B, n)
        c_sq = (a * a).sum(1) + 2 * col * (a * b).sum(1) + col**2 * (b * b).sum(1)  # ||c_i||^2, (B, n)
        sq = (x * x).sum(1, keepdim=True) - 2 * inner + c_sq
        sq = sq - sq.min(dim=1, keepdim=True).values
        gamma2 = noise_scale(tt, self.sigma, self.schedule)[:, None] ** 2
        return torch.softmax(-sq / (2 * gamma2.clamp(min=torch.finfo(x.dtype).tiny)), dim=1)

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        """v(x, t), (B, d)."""
        return self.weights(x, t) @ (self.x1 - self.x0)

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x + (1 - t) v(x, t): the field is finite at t = 1, so the last step of a solver is Euler's."""
        tt = as_time(t, x.shape[0], x)
        return x + (1 - tt)[:, None] * self.velocity(x, tt)


PAIRS: dict[str, tuple[Tensor, Tensor]] = {}
"""Fixed pairs registered for training (:func:`register_pairs`), by key; float32 CPU tensors."""


def register_pairs(x0: Tensor, x1: Tensor) -> str:
    """Register n fixed pairs for the loss ``"paired"`` (:class:`PairedSampler`); return their key.

    The key hashes the float32 bytes of both, so it names the pairing in a checkpoint key of
    :mod:`fmlib.train` (the training data there are the targets ``x1``; the key adds the sources).

    Args:
        x0: (n, d) sources; x1: (n, d) their partners, pairwise distinct rows (a row identifies its pair).
    """
    x0 = check_batch(x0, "x0").detach().to(device="cpu", dtype=torch.float32).contiguous()
    x1 = check_same_shape(check_batch(x1, "x1").detach().to(device="cpu", dtype=torch.float32), x0, "x1", "x0")
    x1 = x1.contiguous()
    if torch.unique(x1, dim=0).shape[0] != x1.shape[0]:
        raise ValueError("x1 has repeated rows: a target must identify its pair; remove the duplicates")
    digest = hashlib.sha256(x0.numpy().tobytes() + x1.numpy().tobytes()).hexdigest()[:16]
    key = f"pairs-{digest}"
    PAIRS[key] = (x0, x1)
    return key


class PairedSampler(TargetSampler):
    r"""The loss ``"paired"`` of :mod:`fmlib.train`: fixed pairs under the noisy interpolant.

    The training data are the targets :math:`x_1^i` of pairs registered with :func:`register_pairs`;
    for each drawn row i the sampler takes its own source :math:`x_0^i`, draws :math:`t \sim U[0, 1)`
    and z, and returns :func:`noisy_interpolant`'s :math:`x_t` and target :math:`x_1 - x_0`.
    :mod:`fmlib.train` passes the drawn row indices (:meth:`sample_rows`); :meth:`sample`, given the
    target rows themselves, looks their indices up and refuses a target that is not a row.

    Args:
        data: (n, d) the registered targets (what :func:`fmlib.train.train_or_load` trains on).
        pairs: the key returned by :func:`register_pairs`.
        sigma: noise level >= 0; schedule: a key of :data:`NOISE_SCHEDULES`.
    """

    name = "paired"

    def __init__(self, data: Tensor, *, pairs: str = "", sigma: float = 0.0, schedule: str = "constant") -> None:
        super().__init__(data)
        if pairs not in PAIRS:
            raise ValueError(f"pairs={pairs!r} is not registered; call fmlib.couplings.register_pairs(x0, x1) first")
        x0, x1 = PAIRS[pairs]
        if x1.shape != data.shape or not torch.equal(x1.to(data), data):
            raise ValueError(f"the training data are not the targets of pairs={pairs!r}: train on its x1, all rows")
        self.pairs, self.sigma = pairs, check_sigma(sigma)
        self.schedule = check_choice(schedule, NOISE_SCHEDULES, "schedule")
        self.x0 = x0.to(data)
        self._data_sq = (data * data).sum(1)

    def sample(self, x1: Tensor, generator: torch.Generator | None) -> Batch:
        """The noisy interpolant of the pairs of the targets ``x1`` (B, d), each a row of ``data``."""
        index = (self._data_sq - 2 * x1 @ self.data.T).argmin(dim=1)  # the nearest row to each target
        if not torch.equal(self.data[index], x1):
            raise ValueError("x1 holds a target that is not a row of the training data (or is closer to another "
                             "row than float32 round-off resolves): pass row indices to sample_rows instead")
        return self.sample_rows(index, generator)

    def sample_rows(self, index: Tensor, generator: torch.Generator | None) -> Batch:
        """The noisy interpolant of the pairs ``(x0[index], data[index])``; index (B,)."""
        x1 = self.data[index]
        t = torch.rand(x1.shape[0], generator=generator, dtype=torch.float64,
                       device=generator_device(generator, x1.device)).to(x1)
        s = noisy_interpolant(self.x0[index], x1, t, sigma=self.sigma, schedule=self.schedule, generator=generator)
        return Batch(x_t=s.x_t, t=s.t, target=s.target)


if PairedSampler.name not in LOSSES:
    register_loss(PairedSampler)
if "minibatch-ot" not in BATCH_COUPLINGS:  # the CFM/EFM losses of fmlib.losses take it as coupling="minibatch-ot"
    register_coupling("minibatch-ot", lambda x0, x1, generator: (x0, minibatch_ot(x0, x1)))
