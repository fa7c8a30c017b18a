r"""Flow matching losses as target samplers: what a training step regresses the network on.

Every loss of :mod:`fmlib.train` is the same regression

.. math:: L(\theta) = E\, \big\|v_\theta(x_t, t) - \text{target}\big\|^2

(mean over the batch and the coordinates); a loss differs only in how it draws the triple
:math:`(x_t, t, \text{target})` from a batch of training points :math:`x_1`. That draw is a
:class:`TargetSampler`; the registry :data:`LOSSES` holds them by name and :func:`make_loss` builds
one with its options, checked before any training starts.

The interface (for a new loss, e.g. a coupled or noisy interpolant in a later chapter):

- subclass :class:`InterpolantSampler`, which draws :math:`x_0 \sim N(0, I)`,
  :math:`t \sim U[0, 1)`, pairs :math:`x_0` with :math:`x_1` by a coupling (a key of
  :data:`BATCH_COUPLINGS`; add one with :func:`register_coupling`: a function
  ``(x0, x1, generator) -> (x0, x1)`` returning the batch re-paired, e.g. by a minibatch optimal
  assignment), forms :math:`x_t = (1 - t) x_0 + t x_1 + \sigma z`, and calls
  :meth:`InterpolantSampler.target`; override ``target`` (and ``__init__`` for new options);
- give it a class attribute ``name`` and keyword-only options with defaults, JSON-serialisable
  (they enter the checkpoint key of :mod:`fmlib.train`); check them in ``__init__`` with a
  ``ValueError`` naming the option;
- :func:`register_loss` it. :meth:`TargetSampler.options` returns the options from the signature.

Losses here:

- ``"cfm"`` (:class:`CFMSampler`): target :math:`x_1 - x_0` (Lipman et al. 2023; with
  ``sigma > 0`` the noisy interpolant of Tong et al.'s ``ConditionalFlowMatcher``, same target).
- ``"efm"`` (:class:`EFMSampler`): Empirical Flow Matching of Bertrand et al. (arXiv 2506.03719):
  the target is the closed form :math:`u^*_M` computed on a pool :math:`b_1 = x_1` (the point that
  made :math:`x_t`) and :math:`b_2, \dots, b_M` drawn with replacement from the training set
  (:func:`efm_target`). It is unbiased for :math:`u^*` only because :math:`b_1 = x_1`
  (:func:`efm_exact_moments`; ``shared/notes/bertrand_2506.03719.md``); M = 1 is CFM.
"""

from __future__ import annotations

import inspect
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from fmlib._checks import as_time, check_choice, check_data, check_float, check_points, check_positive_int
from fmlib.closed_form import ClosedFormField

__all__ = [
    "BATCH_COUPLINGS",
    "LOSSES",
    "Batch",
    "CFMSampler",
    "EFMMoments",
    "EFMSampler",
    "InterpolantSampler",
    "TargetSampler",
    "efm_exact_moments",
    "efm_target",
    "loss_options",
    "make_loss",
    "register_coupling",
    "register_loss",
]

_EXP_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}
"""Smallest shifted logit kept before exp (see :mod:`fmlib.closed_form`)."""


@dataclass(frozen=True)
class Batch:
    """One draw of a flow matching loss.

    Attributes:
        x_t: (B, d) points on the path.
        t: (B,) times in [0, 1).
        target: (B, d) what the network output at (x_t, t) is regressed on.
    """

    x_t: Tensor
    t: Tensor
    target: Tensor


class TargetSampler(ABC):
    """Draws :class:`Batch` es of one loss for the training points ``data`` (n, d).

    Subclasses set the class attribute ``name`` and implement :meth:`sample`; their constructor
    takes ``data`` and keyword-only options with defaults.
    """

    name: ClassVar[str]

    def __init__(self, data: Tensor) -> None:
        self.data = check_data(data)

    @abstractmethod
    def sample(self, x1: Tensor, generator: torch.Generator | None) -> Batch:
        """A batch for the data points ``x1`` (B, d) (rows of ``data``), random numbers from ``generator``."""

    def sample_rows(self, index: Tensor, generator: torch.Generator | None) -> Batch:
        """A batch for the rows ``data[index]`` (index (B,)); what :mod:`fmlib.train` calls.

        By default :meth:`sample` of those rows; a loss that needs to know *which* rows were drawn
        (the ``"paired"`` loss of :mod:`fmlib.couplings`: each target's own source) overrides it.
        """
        return self.sample(self.data[index], generator)

    def options(self) -> dict[str, object]:
        """The loss's options as given (keyword-only arguments of the constructor): they identify the loss."""
        parameters = inspect.signature(type(self).__init__).parameters.values()
        return {p.name: getattr(self, p.name) for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


BatchCoupling = Callable[[Tensor, Tensor, "torch.Generator | None"], tuple[Tensor, Tensor]]
"""``coupling(x0, x1, generator) -> (x0, x1)``: the batch re-paired, both (B, d)."""


def _independent(x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """The independent coupling: x0 and x1 as drawn."""
    return x0, x1


BATCH_COUPLINGS: dict[str, BatchCoupling] = {"independent": _independent}
"""Couplings that re-pair a drawn batch of noise and data, by name (the coupling objects of Reu et al.'s
chapter, which draw their own pairs, are :data:`fmlib.couplings.COUPLINGS`)."""


def register_coupling(name: str, coupling: BatchCoupling) -> None:
    """Add ``coupling(x0, x1, generator) -> (x0, x1)`` to :data:`BATCH_COUPLINGS` under a new ``name``."""
    if not isinstance(name, str) or not name or name in BATCH_COUPLINGS:
        raise ValueError(f"coupling name must be a new non-empty string, got {name!r}")
    BATCH_COUPLINGS[name] = coupling


class InterpolantSampler(TargetSampler):
    r"""The straight interpolant with optional noise and coupling; subclasses give the target.

    .. math::

        x_0 \sim N(0, I_d), \quad t \sim U[0, 1), \quad (x_0, x_1) \leftarrow \pi(x_0, x_1), \quad
        x_t = (1 - t) x_0 + t x_1 + \sigma z, \quad z \sim N(0, I_d)

    Args:
        data: (n, d) training points.
        sigma: interpolant noise :math:`\sigma \ge 0` (0: no z is drawn).
        coupling: :math:`\pi`, a key of :data:`BATCH_COUPLINGS`.
    """

    def __init__(self, data: Tensor, *, sigma: float = 0.0, coupling: str = "independent") -> None:
        super().__init__(data)
        self.sigma = check_float(sigma, "sigma", low=0.0)
        self.coupling = check_choice(coupling, BATCH_COUPLINGS, "coupling")

    def sample(self, x1: Tensor, generator: torch.Generator | None) -> Batch:
        """Draw x0, t (and z), couple, interpolate and call :meth:`target`."""
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
        t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype, device=x1.device)
        x0, x1 = BATCH_COUPLINGS[self.coupling](x0, x1, generator)
        x_t = torch.lerp(x0, x1, t.unsqueeze(1))
        if self.sigma > 0:
            x_t = x_t + self.sigma * torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
        return Batch(x_t=x_t, t=t, target=self.target(x0, x1, x_t, t, generator))

    @abstractmethod
    def target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
        """The regression target (B, d) for the pairs (x0, x1) (B, d) at x_t (B, d), t (B,)."""


class CFMSampler(InterpolantSampler):
    r"""Conditional flow matching: target :math:`x_1 - x_0`, the velocity of the straight path."""

    name = "cfm"

    def target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
        """:math:`x_1 - x_0`, (B, d)."""
        return x1 - x0


def efm_target(x0: Tensor, x1: Tensor, t: Tensor, others: Tensor) -> Tensor:
    r"""The closed-form velocity of the pool :math:`\{x_1, b_2, \dots, b_M\}` at :math:`x_t = (1 - t) x_0 + t x_1`.

    .. math::

        u^*_M(x_t, t) = \sum_{j=1}^{M} \lambda_j \frac{b_j - x_t}{1 - t}
        = (x_1 - x_0) + \sum_{j=2}^{M} \lambda_j \frac{b_j - x_1}{1 - t}, \qquad
        \lambda = \operatorname{softmax}(\ell), \quad \ell_1 = 0, \quad
        \ell_j = -s \langle x_0, \delta_j\rangle - \tfrac{s^2}{2} \|\delta_j\|^2

    with :math:`b_1 = x_1`, :math:`\delta_j = x_1 - b_j` and :math:`s = t / (1 - t)`: the
    logits :math:`-\|x_t - t b_j\|^2 / (2 (1 - t)^2)` of Bertrand et al. (arXiv 2506.03719,
    Empirical Flow Matching) less the one of :math:`b_1`. Written around :math:`x_1`, the target has
    no cancellation as t -> 1 (the second sum carries weights that vanish there), and with M = 1 it
    is :math:`x_1 - x_0` exactly. Each row b has its own :math:`x_1` and shares ``others``, so each
    row's pool is :math:`x_1` plus the same M - 1 draws; every row's target has the law of the
    estimator. The inner products are expanded (one matrix product each), so a :math:`b_j` equal
    to :math:`x_1` up to rounding gets a weight as accurate as the data's dtype allows.

    Args:
        x0: (B, d) noise.
        x1: (B, d) data points, :math:`b_1` of each row's pool.
        t: (B,) times in [0, 1).
        others: (M - 1, d) the other pool points :math:`b_2, \dots, b_M` (M - 1 may be 0).

    Returns:
        (B, d) targets.
    """
    if others.shape[0] == 0:
        return x1 - x0
    gap = 1.0 - t
    s = (t / gap).unsqueeze(1)
    others_sq = others.square().sum(dim=1)
    x0_dot_delta = (x0 * x1).sum(dim=1, keepdim=True) - x0 @ others.T
    delta_sq = (x1.square().sum(dim=1, keepdim=True) - 2.0 * (x1 @ others.T) + others_sq).clamp_(min=0.0)
    logits = torch.cat([torch.zeros_like(s), -s * x0_dot_delta - (0.5 * s * s) * delta_sq], dim=1)
    weights = (logits - logits.amax(dim=1, keepdim=True)).clamp_(min=_EXP_FLOOR[logits.dtype]).exp_()
    weights = (weights / weights.sum(dim=1, keepdim=True))[:, 1:]
    correction = weights @ others - weights.sum(dim=1, keepdim=True) * x1
    return (x1 - x0) + correction / gap.unsqueeze(1)


class EFMSampler(InterpolantSampler):
    r"""Empirical flow matching with pool size M (Bertrand et al., arXiv 2506.03719).

    The target is :func:`efm_target` with :math:`b_1 = x_1` and :math:`b_2, \dots, b_M` drawn
    uniformly with replacement from ``data`` at each step (shared by the rows of the batch, as the
    authors' code shares its pool; each row's own :math:`x_1` is always in its pool).

    Args:
        data: (n, d) training points (the pool is drawn from them).
        pool_size: M >= 1; M = 1 is CFM.
    """

    name = "efm"

    def __init__(self, data: Tensor, *, pool_size: int = 128) -> None:
        super().__init__(data)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(
                f"pool_size (M) must be an integer >= 1 (M = 1 is CFM; the paper uses 128 to 1024), got {pool_size!r}"
            )
        self.pool_size = pool_size

    def target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
        """:func:`efm_target` with M - 1 fresh draws from the data, (B, d)."""
        index = torch.randint(self.data.shape[0], (self.pool_size - 1,), generator=generator, device=x1.device)
        return efm_target(x0, x1, t, self.data[index])


LOSSES: dict[str, type[TargetSampler]] = {"cfm": CFMSampler, "efm": EFMSampler}
"""Losses by name."""


def register_loss(sampler: type[TargetSampler]) -> None:
    """Add a :class:`TargetSampler` subclass to :data:`LOSSES` under its ``name`` (a new name only)."""
    name = getattr(sampler, "name", None)
    if not isinstance(name, str) or not name or name in LOSSES:
        raise ValueError(f"a loss needs a new non-empty class attribute name, got {name!r}")
    LOSSES[name] = sampler


def loss_options(name: str) -> dict[str, object]:
    """The keyword options of loss ``name`` and their defaults."""
    sampler = LOSSES[check_choice(name, LOSSES, "loss")]
    parameters = inspect.signature(sampler.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def make_loss(name: str, data: Tensor, **options: object) -> TargetSampler:
    """Build the loss ``name`` (a key of :data:`LOSSES`) for the training points ``data`` (n, d).

    Raises:
        ValueError: unknown ``name`` (with the closest match), an option the loss does not take, or
            a value it refuses (e.g. ``pool_size`` < 1).
    """
    accepted = loss_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"loss {name!r} takes no option {', '.join(unknown)}; it accepts {', '.join(accepted)}")
    return LOSSES[name](data, **options)


@dataclass(frozen=True)
class EFMMoments:
    r"""Exact moments of the EFM target at one point, by enumeration of :math:`x_1` and the pool.

    Attributes:
        mean: (d,) :math:`E[u^*_M(x, t) \mid x_t = x]`.
        optimal: (d,) :math:`u^*(x, t)`, the closed form on all the data.
        bias: :math:`\|\text{mean} - u^*\|`.
        variance: :math:`E\|u^*_M - u^*\|^2` (summed over coordinates).
        cfm_variance: :math:`E\|x_1 - x_0 - u^*\|^2` given :math:`x_t = x`, the CFM target's.
    """

    mean: Tensor
    optimal: Tensor
    bias: float
    variance: float
    cfm_variance: float


def efm_exact_moments(data: Tensor, x: Tensor, t: float, pool_size: int, *, anchor: str = "x1") -> EFMMoments:
    r"""The law of the EFM target at :math:`x_t = x`, enumerated exactly (tiny n and M only).

    .. math::

        E[u^*_M] = \sum_i \lambda_i(x, t) \sum_{(b_2..b_M) \in [n]^{M-1}} n^{-(M-1)}\,
        u^*_{\{y_i, b_2, \dots, b_M\}}(x, t)

    with :math:`x_1 = y_i` drawn from the posterior :math:`\lambda(x, t)` (``anchor="x1"``: the
    estimator of Bertrand et al.), or with :math:`b_1` uniform over the data, independent of
    :math:`x_1` (``anchor="uniform"``: the biased variant the notes warn about). Pool targets come
    from :func:`efm_target`, so this checks the implementation too. Cost: :math:`n^M` pools.

    Args:
        data: (n, d) training points, float64 recommended.
        x: (d,) the point.
        t: time in [0, 1).
        pool_size: M >= 1, with n^M at most 10^6.
        anchor: ``"x1"`` or ``"uniform"``.

    Returns:
        :class:`EFMMoments`.
    """
    check_data(data)
    x = check_points(x.reshape(1, -1), data, "x")
    t_vec = as_time(t, 1, data)
    if float(t_vec[0]) >= 1:
        raise ValueError(f"t must lie in [0, 1) (the target divides by 1 - t), got {t!r}")
    pool_size = check_positive_int(pool_size, "pool_size")
    anchor = check_choice(anchor, ("x1", "uniform"), "anchor")
    n = data.shape[0]
    if n**pool_size > 10**6:
        raise ValueError(f"n^M = {n}^{pool_size} pools is too many to enumerate; use n^M <= 10^6")
    field = ClosedFormField(data)
    optimal = field.velocity(x, t_vec)[0]
    posterior = field.weights(x, t_vec)[0]
    anchor_weight = posterior if anchor == "x1" else torch.full_like(posterior, 1.0 / n)
    # x0 of each anchor i, so that x = (1 - t) x0 + t y_i: efm_target's pool is then {y_i} and the others.
    tt = float(t_vec[0])
    x0 = (x - tt * data) / (1.0 - tt)
    t_rows = torch.full((n,), tt, dtype=data.dtype, device=data.device)
    mean = torch.zeros_like(optimal)
    second = torch.zeros((), dtype=data.dtype, device=data.device)
    draws = itertools.product(range(n), repeat=pool_size - 1)
    for pool in draws:
        targets = efm_target(x0, data, t_rows, data[list(pool)])  # (n, d): one row per anchor
        mean += anchor_weight @ targets / n ** (pool_size - 1)
        second += anchor_weight @ (targets - optimal).square().sum(dim=1) / n ** (pool_size - 1)
    cfm = (data - x) / (1.0 - tt)
    cfm_variance = posterior @ (cfm - optimal).square().sum(dim=1)
    return EFMMoments(
        mean=mean,
        optimal=optimal,
        bias=float((mean - optimal).norm()),
        variance=float(second),
        cfm_variance=float(cfm_variance),
    )
